"""Sample quality per sampler and step count on a trained digits model: classifier accuracy and Frechet distance.

    keras-dit train -c digits --set output_dir=/tmp/sampling-digits            # once (rectified flow)
    python benchmarks/sampler_quality.py --model /tmp/sampling-digits/model.keras
    keras-dit train -c digits --set output_dir=/tmp/sampling-digits-gaussian --set objective.kind=gaussian
    python benchmarks/sampler_quality.py --model /tmp/sampling-digits-gaussian/model.keras
    python benchmarks/sampler_quality.py --model keras-dit-demo/model.keras --per-class 50 --seeds 0 1 2 \
        --rows heun:20 euler:20 --guidance-scale 1.2 --guidance-interval 0 0.4     # the demo's sampling

Generates ``--per-class`` images of every digit with each sampler and step count (the same seed, guidance
scale and labels for all) and scores them with ``kd.metrics.evaluate_digits``: the share the digits classifier
recognises as their class and the Frechet distance to the real digits in its feature space (lower is better;
biased upwards for small samples, so compare rows of one run), averaged over ``--seeds`` (the per-seed distances
are printed too). The reference is the first row: by default 50 steps of the objective's usual sampler (Euler
for flows, DDIM for Gaussian models); each row also gives its distance relative to it.
Prints a table and one JSON line (``{"benchmark": "sampler_quality", ...}``).
"""

import argparse
import json
import time

import numpy as np

ROWS = {
    "rectified_flow": [("euler", 50), ("euler", 10), ("heun", 25), ("dpm_solver", 5), ("dpm_solver", 10),
                       ("dpm_solver", 20), ("unipc", 5), ("unipc", 10), ("unipc", 20)],
    "gaussian": [("ddim", 50), ("ddim", 10), ("dpm_solver", 5), ("dpm_solver", 10), ("dpm_solver", 20),
                 ("unipc", 5), ("unipc", 10), ("unipc", 20)],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a trained digits DiffusionModel (.keras)")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                        help="guide only at noise levels in [LO, HI] (0 data, 1 noise)")
    parser.add_argument("--shift", type=float, default=None,
                        help="a flow sampler's time shift at inference (default: the objective's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rows", nargs="+", default=None, metavar="SAMPLER:STEPS",
                        help="the rows to run, e.g. heun:20 euler:50 (default: the objective's table above)")
    args = parser.parse_args()

    import keras

    import keras_dit as kd

    model = keras.saving.load_model(args.model)
    kind = "rectified_flow" if isinstance(model.objective, kd.diffusion.RectifiedFlow) else "gaussian"
    labels = np.repeat(np.arange(10), args.per_class)
    rows = ROWS[kind] if args.rows is None else [(row.split(":")[0], int(row.split(":")[1])) for row in args.rows]
    results = []
    shifted = {} if args.shift is None else {"shift": args.shift}
    for sampler, steps in rows:
        start = time.perf_counter()
        per_seed = []
        built = kd.samplers.get_sampler(sampler, **shifted)
        for seed in args.seeds:
            images = model.generate(labels, num_steps=steps, sampler=built, guidance_scale=args.guidance_scale,
                                    guidance_interval=args.guidance_interval, seed=seed)
            per_seed.append(kd.metrics.evaluate_digits(images, labels))
        results.append(dict(sampler=sampler, steps=steps, accuracy=float(np.mean([s["accuracy"] for s in per_seed])),
                            frechet_distance=float(np.mean([s["frechet_distance"] for s in per_seed])),
                            frechet_per_seed=[s["frechet_distance"] for s in per_seed],
                            seconds=time.perf_counter() - start))
    reference = results[0]["frechet_distance"]
    print(f"\n{args.model} ({kind}): {len(labels)} images, guidance {args.guidance_scale} "
          f"(interval {args.guidance_interval}), shift {args.shift}, seeds {args.seeds}; "
          f"classifier accuracy on real digits {per_seed[0]['classifier_test_accuracy']:.3f}")
    print(f"{'sampler':12s} {'steps':>5s} {'accuracy':>8s} {'Frechet':>8s} {'x ref':>6s} {'seconds':>8s}  per seed")
    for row in results:
        row["frechet_vs_reference"] = row["frechet_distance"] / reference
        print(f"{row['sampler']:12s} {row['steps']:5d} {row['accuracy']:8.3f} {row['frechet_distance']:8.3f} "
              f"{row['frechet_vs_reference']:6.2f} {row['seconds']:8.1f}  "
              + " ".join(f"{d:.3f}" for d in row["frechet_per_seed"]))
    print(json.dumps(dict(benchmark="sampler_quality", model=args.model, objective=kind, images=len(labels),
                          guidance_scale=args.guidance_scale, guidance_interval=args.guidance_interval,
                          shift=args.shift, seeds=args.seeds, rows=results)))


if __name__ == "__main__":
    main()
