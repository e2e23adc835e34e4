"""Training speed of the demo's DiT on a CPU-only host: one JAX device against one device per core.

XLA:CPU runs a small model's ops one after another, each keeping about one core busy; ``distribution.split_cpu``
(``kd.distribution.host_cpu_devices``) presents the host as one JAX device per core and trains data parallel
over them. Each arm trains the ``digits`` preset (its batch of 64) in a fresh process (the device count is fixed
when JAX starts) and times ``--steps`` optimizer steps after ``--warmup`` (compilation excluded):

    KERAS_BACKEND=jax python benchmarks/cpu_devices.py

Prints milliseconds per step per arm, the ratio one-device / split, and one JSON line.
"""

import argparse
import json
import os
import sys
import time

from child_process import run_child  # benchmarks/, the running script's folder, is on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def child(split, steps, warmup):
    import keras

    from keras_dit.cli import builders
    from keras_dit.cli.config import load_config

    config = load_config("digits", [f"distribution.split_cpu={str(split).lower()}"])
    with builders.distribution_scope(config):
        dataset = builders.build_data(config)
        model = builders.build_model(config, dataset)
        distribution = keras.distribution.distribution()
        devices = distribution.device_mesh.devices.size if distribution else 1

        class Timer(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                self.steps = getattr(self, "steps", 0) + 1
                if self.steps == warmup:
                    self.start = time.perf_counter()
                if self.steps == warmup + steps:
                    self.seconds = time.perf_counter() - self.start
                    self.model.stop_training = True

        timer = Timer()
        model.fit(dataset, epochs=10_000, verbose=0, callbacks=[timer])
    print(json.dumps({"split_cpu": split, "devices": devices, "ms_per_step": 1000 * timer.seconds / steps}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="timed optimizer steps per arm")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first (compilation)")
    parser.add_argument("--child", choices=("one", "split"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child == "split", args.steps, args.warmup)
    if os.environ.get("KERAS_BACKEND", "jax") != "jax":
        raise SystemExit("split_cpu is a JAX option: run with KERAS_BACKEND=jax")
    argv = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    rows = [run_child(__file__, [*argv, "--child", arm], f"the {arm} arm", KERAS_BACKEND="jax")
            for arm in ("one", "split")]
    for row in rows:
        print(f"split_cpu={str(row['split_cpu']).lower():5} devices {row['devices']}: {row['ms_per_step']:.1f} ms/step")
    ratio = rows[0]["ms_per_step"] / rows[1]["ms_per_step"]
    print(f"split / one device: {ratio:.2f}x the steps per second, {os.cpu_count()} CPUs")
    print(json.dumps({"benchmark": "cpu_devices", "rows": rows, "speedup": ratio}))


if __name__ == "__main__":
    main()
