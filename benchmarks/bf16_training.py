"""A small DiT trained under ``mixed_bfloat16`` and under ``float32``: final losses, NaNs and time per step.

scikit-learn's 8x8 digits, upsampled to 16 px and scaled to [-1, 1], train a class-conditional DiT (patch 2,
hidden 128, depth 4, 4 heads) with rectified flow and AdamW for ``--steps`` steps on the same batches. Each
policy runs in a fresh subprocess. The final loss is the mean of the last 50 steps' losses (the losses are noisy:
each step draws its own noise and times).

    KERAS_BACKEND=jax python benchmarks/bf16_training.py --steps 500

Prints a table and one JSON line (``{"benchmark": "bf16_training", ...}``).
"""

import argparse
import json
import os
import sys
import time

from child_process import run_child  # benchmarks/, the running script's folder, is on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def digits(size=16):
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    small = (data.images / 16.0).astype("float32")
    big = np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in small])
    return (np.clip(big, 0, 1) * 2 - 1)[..., None].astype("float32"), data.target.astype("int32")


def child(policy, steps, batch):
    import keras
    import numpy as np

    import keras_dit as kd

    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    images, labels = digits()
    backbone = kd.models.DiT(input_size=16, patch_size=2, in_channels=1, hidden_size=128, depth=4, num_heads=4,
                             num_classes=10, seed=0)
    model = kd.tasks.DiffusionModel(backbone, kd.diffusion.RectifiedFlow(), seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    rng = np.random.default_rng(0)
    losses, times = [], []
    for _ in range(steps):
        index = rng.integers(0, len(images), batch)
        start = time.perf_counter()
        losses.append(float(np.ravel(model.train_on_batch(images[index], labels[index]))[0]))
        times.append(time.perf_counter() - start)
    losses = np.asarray(losses)
    print(json.dumps({
        "policy": policy, "final_loss": float(np.mean(losses[-50:])), "first_loss": float(losses[0]),
        "nan_steps": int(np.sum(~np.isfinite(losses))), "step_s": float(np.median(times[1:])),
        "weights_finite": bool(all(np.all(np.isfinite(w)) for w in model.get_weights())),
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.steps, args.batch)

    import keras

    rows = {}
    for policy in ("float32", "mixed_bfloat16"):
        argv = ["--child", policy, "--steps", str(args.steps), "--batch", str(args.batch)]
        rows[policy] = run_child(__file__, argv, f"the {policy} run")
    backend = keras.backend.backend()
    print(f"DiT (16 px digits, patch 2, hidden 128, depth 4), {args.steps} steps of batch {args.batch}, {backend}")
    print(f"{'policy':16} {'first loss':>10} {'final loss':>10} {'NaN steps':>9} {'s/step':>8}")
    for policy, row in rows.items():
        print(f"{policy:16} {row['first_loss']:10.4f} {row['final_loss']:10.4f} {row['nan_steps']:9d} "
              f"{row['step_s']:8.4f}")
    f32, bf16 = rows["float32"], rows["mixed_bfloat16"]
    print(json.dumps({
        "benchmark": "bf16_training", "backend": backend, "steps": args.steps, "batch": args.batch,
        "final_loss": {"float32": f32["final_loss"], "mixed_bfloat16": bf16["final_loss"]},
        "nan_steps": {"float32": f32["nan_steps"], "mixed_bfloat16": bf16["nan_steps"]},
        "weights_finite": bf16["weights_finite"] and f32["weights_finite"],
        "loss_ratio": bf16["final_loss"] / f32["final_loss"],
        "step_time_ratio": bf16["step_s"] / f32["step_s"],
    }))


if __name__ == "__main__":
    main()
