"""Peak memory of a DiT-B/2 training step with and without gradient checkpointing (``remat=True``).

Each setting runs in a fresh subprocess: a ``DiffusionModel`` (rectified flow, AdamW) over a DiT-B/2 on 32x32x4
latents trains ``--steps`` steps at ``--batch``; the child reports its peak resident memory
(``resource.getrusage``), the resident memory once the model and optimizer exist (so the difference is what the
training step adds: activations, gradients, workspace) and the time per step after the first. On JAX it also
compiles the loss-and-gradient function alone and reports XLA's ``memory_analysis`` (temporary buffers).

On XLA:CPU (jax 0.10) checkpointing barely lowers the compiled temporaries, even for a plain ``jax.checkpoint``
outside Keras: XLA:CPU's buffer assignment keeps the recomputed activations alive much as the saved ones. The
reduction shows on PyTorch (``torch.utils.checkpoint``) and is expected on GPU / TPU XLA.

    KERAS_BACKEND=jax python benchmarks/remat_memory.py --batch 16
    KERAS_BACKEND=torch python benchmarks/remat_memory.py --batch 16 --steps 2

Prints a table and one JSON line (``{"benchmark": "remat_memory", ...}``).
"""

import argparse
import json
import os
import resource
import sys
import time

from child_process import run_child  # benchmarks/, the running script's folder, is on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def jax_step_memory(backbone, batch):
    """XLA's memory analysis of the compiled loss-and-gradient of the backbone (MB of temporaries), or None."""
    import jax
    import jax.numpy as jnp

    def loss(trainable, non_trainable, x, t, labels):
        y, _ = backbone.stateless_call(trainable, non_trainable, {"x": x, "t": t, "condition": labels}, training=True)
        return jnp.mean(jnp.square(y - x))

    args = ([v.value for v in backbone.trainable_variables], [v.value for v in backbone.non_trainable_variables],
            jnp.zeros((batch, 32, 32, 4)), jnp.ones((batch,)), jnp.zeros((batch,), "int32"))
    try:
        analysis = jax.jit(jax.grad(loss)).lower(*args).compile().memory_analysis()
    except Exception as error:  # memory_analysis is optional in XLA backends
        print(f"memory_analysis unavailable: {error}", file=sys.stderr)
        return None
    return None if analysis is None else analysis.temp_size_in_bytes / 2**20


def child(remat, batch, steps):
    import keras
    import numpy as np

    import keras_dit as kd

    keras.utils.set_random_seed(0)
    backbone = kd.models.DiT.from_preset("DiT-B/2", learn_sigma=False, remat=remat)
    model = kd.tasks.DiffusionModel(backbone, kd.diffusion.RectifiedFlow(), seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-4))
    model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    latents = rng.normal(size=(batch, 32, 32, 4)).astype("float32")
    labels = rng.integers(0, 1000, batch).astype("int32")
    before = rss_mb()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = float(np.ravel(model.train_on_batch(latents, labels))[0])
        times.append(time.perf_counter() - start)
    result = {"remat": remat, "peak_rss_mb": peak_rss_mb(), "model_rss_mb": before, "loss": loss,
              "step_s": float(np.median(times[1:])) if len(times) > 1 else times[0]}
    if keras.backend.backend() == "jax":
        result["xla_temp_mb"] = jax_step_memory(backbone, batch)
    print(json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", choices=["off", "on"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child == "on", args.batch, args.steps)

    import keras

    rows = {}
    for setting in ("off", "on"):
        argv = ["--child", setting, "--batch", str(args.batch), "--steps", str(args.steps)]
        rows[setting] = run_child(__file__, argv, f"the remat={setting} run")
    print(f"DiT-B/2, 32x32x4 latents, batch {args.batch}, {keras.backend.backend()} backend, AdamW")
    header = f"{'remat':6} {'peak RSS MB':>12} {'after build MB':>15} {'step adds MB':>13} {'XLA temp MB':>12}"
    print(f"{header} {'s/step':>8}")
    for setting, row in rows.items():
        xla = row.get("xla_temp_mb")
        print(f"{setting:6} {row['peak_rss_mb']:12.0f} {row['model_rss_mb']:15.0f} "
              f"{row['peak_rss_mb'] - row['model_rss_mb']:13.0f} {'-' if xla is None else f'{xla:.0f}':>12} "
              f"{row['step_s']:8.2f}")
    off, on = rows["off"], rows["on"]
    summary = {
        "benchmark": "remat_memory", "backend": keras.backend.backend(), "model": "DiT-B/2", "batch": args.batch,
        "peak_rss_mb": {"off": off["peak_rss_mb"], "on": on["peak_rss_mb"]},
        "peak_rss_ratio": on["peak_rss_mb"] / off["peak_rss_mb"],
        "step_memory_ratio": (on["peak_rss_mb"] - on["model_rss_mb"]) / (off["peak_rss_mb"] - off["model_rss_mb"]),
        "step_time_ratio": on["step_s"] / off["step_s"],
    }
    if off.get("xla_temp_mb") and on.get("xla_temp_mb"):
        summary["xla_temp_mb"] = {"off": off["xla_temp_mb"], "on": on["xla_temp_mb"]}
        summary["xla_temp_ratio"] = on["xla_temp_mb"] / off["xla_temp_mb"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
