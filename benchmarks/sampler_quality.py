"""Sample quality per sampler and step count on a trained digits model: classifier accuracy and Frechet distance.

    keras-dit train -c digits --set output_dir=/tmp/sampling-digits            # once (rectified flow)
    python benchmarks/sampler_quality.py --model /tmp/sampling-digits/model.keras
    keras-dit train -c digits --set output_dir=/tmp/sampling-digits-gaussian --set objective.kind=gaussian
    python benchmarks/sampler_quality.py --model /tmp/sampling-digits-gaussian/model.keras

Generates ``--per-class`` images of every digit with each sampler and step count (the same seed, guidance
scale and labels for all) and scores them with ``kd.metrics.evaluate_digits``: the share the digits classifier
recognises as their class and the Frechet distance to the real digits in its feature space (lower is better;
biased upwards for small samples, so compare rows of one run). The reference is 50 steps of the objective's
usual sampler (Euler for flows, DDIM for Gaussian models); each row also gives its distance relative to it.
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
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import keras

    import keras_dit as kd

    model = keras.saving.load_model(args.model)
    kind = "rectified_flow" if isinstance(model.objective, kd.diffusion.RectifiedFlow) else "gaussian"
    labels = np.repeat(np.arange(10), args.per_class)
    results = []
    for sampler, steps in ROWS[kind]:
        start = time.perf_counter()
        images = model.generate(labels, num_steps=steps, sampler=sampler, guidance_scale=args.guidance_scale,
                                seed=args.seed)
        scores = kd.metrics.evaluate_digits(images, labels)
        results.append(dict(sampler=sampler, steps=steps, accuracy=scores["accuracy"],
                            frechet_distance=scores["frechet_distance"], seconds=time.perf_counter() - start))
    reference = results[0]["frechet_distance"]
    print(f"\n{args.model} ({kind}): {len(labels)} images, guidance {args.guidance_scale}, seed {args.seed}; "
          f"classifier accuracy on real digits {scores['classifier_test_accuracy']:.3f}")
    print(f"{'sampler':12s} {'steps':>5s} {'accuracy':>8s} {'Frechet':>8s} {'x ref':>6s} {'seconds':>8s}")
    for row in results:
        row["frechet_vs_reference"] = row["frechet_distance"] / reference
        print(f"{row['sampler']:12s} {row['steps']:5d} {row['accuracy']:8.3f} {row['frechet_distance']:8.3f} "
              f"{row['frechet_vs_reference']:6.2f} {row['seconds']:8.1f}")
    print(json.dumps(dict(benchmark="sampler_quality", model=args.model, objective=kind, images=len(labels),
                          guidance_scale=args.guidance_scale, seed=args.seed, rows=results)))


if __name__ == "__main__":
    main()
