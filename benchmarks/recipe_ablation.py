"""Ablation of the modern DiT recipe on the built-in digits: the demo's DiT against each option and all of them.

Every arm trains the demo's model (``keras-dit demo``'s ``digits`` preset with every option off, then the arm's) for
the same wall-clock budget in a fresh process, then draws ``--samples`` images (an equal number per class) and
scores them with the digits classifier (``kd.metrics.evaluate_digits``): accuracy (share recognised as their
class) and the Frechet distance to the real digits in its feature space (500 real digits, 50 per class,
score 0.14-0.28 at 16 px).

    KERAS_BACKEND=jax python benchmarks/recipe_ablation.py --budget 240

Arms: baseline, rmsnorm, swiglu, qk_norm, rope, direction (the velocity-direction loss, per sample: the digits
have one channel), all (every option). REPA needs a pretrained encoder, which the built-in digits have none of,
so it is not an arm. A fixed wall-clock budget charges each option its cost per step; on a busy machine the
steps reached vary with the load, so the table also gives them, and ``--steps N`` caps every arm at N steps
(with a large ``--budget``: equal compute instead). Prints a table and one JSON line.
"""

import argparse
import json
import os
import sys
import time

from child_process import run_child  # benchmarks/, the running script's folder, is on sys.path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# The paper's DiT (every option off), on which each arm switches its options on.
BASELINE = ["model.norm_type=layer", "model.mlp_type=gelu", "model.qk_norm=false", "model.rope=false",
            "objective.direction_weight=0"]
ARMS = {
    "baseline": [],
    "rmsnorm": ["model.norm_type=rms"],
    "swiglu": ["model.mlp_type=swiglu"],
    "qk_norm": ["model.qk_norm=true"],
    "rope": ["model.rope=true"],
    "direction": ["objective.direction_weight=1.0", "objective.direction_axes=sample"],
    "all": ["model.norm_type=rms", "model.mlp_type=swiglu", "model.qk_norm=true", "model.rope=true",
            "objective.direction_weight=1.0", "objective.direction_axes=sample"],
}


def child(arm, budget, max_steps, samples, seed, overrides):
    import keras
    import numpy as np

    import keras_dit as kd
    from keras_dit.cli import builders
    from keras_dit.cli.config import load_config

    config = load_config("digits", [f"seed={seed}", *BASELINE, *ARMS[arm], *overrides])
    dataset = builders.build_data(config)
    model = builders.build_model(config, dataset)

    class Budget(keras.callbacks.Callback):
        """Stops training once ``budget`` seconds have passed since the first batch ended (compilation excluded),
        or after ``max_steps`` steps."""

        def on_train_batch_end(self, batch, logs=None):
            self.start = getattr(self, "start", time.time())
            self.steps = getattr(self, "steps", 0) + 1
            if time.time() - self.start > budget or self.steps >= max_steps:
                self.model.stop_training = True

    stop = Budget()
    start = time.time()
    history = model.fit(dataset, epochs=10_000, verbose=0, callbacks=[stop])
    trained = time.time() - start
    labels = np.repeat(np.arange(10), samples // 10)
    images = model.generate(labels, num_steps=config["sample.num_steps"], sampler=config["sample.sampler"],
                            guidance_scale=config["sample.guidance_scale"], seed=seed)
    result = kd.metrics.evaluate_digits(images, labels)
    print(json.dumps({
        "arm": arm, "seed": seed, "steps": stop.steps, "train_s": trained, "final_loss": history.history["loss"][-1],
        "parameters": model.backbone.count_params(), "accuracy": result["accuracy"],
        "frechet_distance": result["frechet_distance"], "sample_s": time.time() - start - trained,
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=float, default=240.0, help="training seconds per arm")
    parser.add_argument("--steps", type=int, default=10**9,
                        help="at most this many training steps per arm (equal compute on a busy machine)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--samples", type=int, default=500, help="images per arm (a multiple of 10)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="a config override for every arm, e.g. --set sample.guidance_scale=1.0")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.budget, args.steps, args.samples, args.seeds[0], args.overrides)

    import keras

    rows = []
    for arm in args.arms:
        for seed in args.seeds:
            argv = ["--child", arm, "--budget", str(args.budget), "--steps", str(args.steps), "--samples",
                    str(args.samples), "--seeds", str(seed)]
            argv += [item for override in args.overrides for item in ("--set", override)]
            rows.append(run_child(__file__, argv, f"arm {arm} (seed {seed})"))
            row = rows[-1]
            print(f"{arm:10} seed {seed}: {row['steps']:5d} steps, loss {row['final_loss']:.4f}, accuracy "
                  f"{row['accuracy']:.1%}, Frechet distance {row['frechet_distance']:.3f}", flush=True)
    limit = f"{args.budget:.0f} s" + (f" or {args.steps} steps" if args.steps < 10**9 else "")
    print(f"digits DiT, {limit} of training per arm, {args.samples} samples, {keras.backend.backend()}, "
          f"overrides {args.overrides or 'none'}")
    print(f"{'arm':10} {'seed':>4} {'params':>8} {'steps':>6} {'loss':>7} {'accuracy':>9} {'Frechet':>8}")
    for row in rows:
        print(f"{row['arm']:10} {row['seed']:4d} {row['parameters']:8d} {row['steps']:6d} {row['final_loss']:7.4f} "
              f"{row['accuracy']:9.1%} {row['frechet_distance']:8.3f}")
    print(json.dumps({"benchmark": "recipe_ablation", "backend": keras.backend.backend(), "budget_s": args.budget,
                      "max_steps": args.steps,
                      "samples": args.samples, "overrides": args.overrides, "rows": rows}))


if __name__ == "__main__":
    main()
