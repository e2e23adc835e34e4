"""The full ``keras-dit demo -c latent-alphabet`` measured: fidelity, wall time per stage, peak memory.

Runs the demo (train-vae -> scale-factor -> cache-latents -> train -> sample held-out parameter vectors -> score
against their true renders and against the null-condition baseline) in a child process under
``/usr/bin/time -v`` (its "Maximum resident set size" is the peak memory), then reads the run's report.txt and
samples/evaluation.json. ``--set`` options go to the demo.

    KERAS_BACKEND=jax nice -n 19 python benchmarks/latent_alphabet.py --output-dir /tmp/alphabet-demo

Prints one JSON line (``{"benchmark": "latent_alphabet", ...}``); the sample grids are samples/grid.png
(conditioned) and samples/baseline.png (null condition) in the output folder.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stage_seconds(report):
    """{stage: seconds} from the demo's report line ``backend: jax; VAE training 120 s, ... (total 600 s)``."""
    line = next(line for line in report.splitlines() if line.startswith("backend:"))
    return {name.strip(): int(seconds) for name, seconds in re.findall(r"([A-Za-z ]+?) (\d+) s", line.split(";", 1)[1])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", required=True, help="the demo's output_dir (its files are kept there)")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                        help="a config override passed to the demo; repeat for several")
    args = parser.parse_args()
    out = os.path.abspath(args.output_dir)
    paths = {"output_dir": out, "data.latent_cache": f"{out}/latents.npz", "vae.checkpoint": f"{out}/vae.keras",
             "vae.cache": f"{out}/latents.npz", "model.autoencoder": f"{out}/vae.keras",
             "train.verbose": 2, "train.tensorboard": "false"}
    sets = [a for k, v in paths.items() for a in ("--set", f"{k}={v}")]
    sets += [a for override in args.overrides for a in ("--set", override)]
    cli = "import sys; from keras_dit.cli import main; sys.exit(main(sys.argv[1:]))"  # keras-dit, from ROOT
    command = ["/usr/bin/time", "-v", sys.executable, "-c", cli, "demo", "-c", "latent-alphabet", *sets]
    start = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    wall = time.time() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-3000:])
        raise SystemExit(f"the demo failed (exit status {done.returncode})")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    with open(os.path.join(out, "report.txt")) as f:
        report = f.read()
    with open(os.path.join(out, "samples", "evaluation.json")) as f:
        scores = json.load(f)["alphabet"]
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    print(report, end="")
    print(json.dumps({
        "benchmark": "latent_alphabet", "backend": os.environ.get("KERAS_BACKEND", "jax"), "overrides": args.overrides,
        "wall_s": round(wall), "stage_s": stage_seconds(report), "peak_rss_mib": round(peak_kb / 1024),
        "load_average_after": load, **{k: round(v, 3) for k, v in scores.items() if isinstance(v, float)},
        "grids": [os.path.join(out, "samples", name) for name in ("grid.png", "baseline.png")],
    }))


if __name__ == "__main__":
    main()
