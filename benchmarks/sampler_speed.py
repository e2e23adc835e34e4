"""Sampling throughput per sampler: keras_dit's compiled sampling loop on each backend against diffusers.

    python benchmarks/sampler_speed.py                          # a small DiT, 4 images x 20 steps with CFG
    python benchmarks/sampler_speed.py --config dit-s2 --steps 10 --backends jax torch

For each sampler, keras_dit's ``DiffusionModel.generate`` (one compiled program per configuration; its first
call, which compiles, is reported apart) and diffusers' pipeline loop (``DiTTransformer2DModel`` with the same
configuration, ``scheduler.step`` per step, the conditional and unconditional halves in one batched forward)
run the same number of steps on the same batch: DDIM, DPM-Solver++ 2M and UniPC on a Gaussian (epsilon)
model against ``DDIMScheduler``, ``DPMSolverMultistepScheduler`` and ``UniPCMultistepScheduler``, Euler on a
rectified-flow model against ``FlowMatchEulerDiscreteScheduler``. Every run is a fresh process (one backend
each, ``tensorflow-xla`` = ``compile(jit_compile=True)``, ``torch-plain`` = the torch trace without
``kd.backend``'s graph rewrites, ``KERAS_DIT_STREAMLINE_TORCH=0``). The machine's load average is printed with
each run: on a shared machine, compare ratios within one run. Prints a table and one JSON line
(``{"benchmark": "sampler_speed", ...}``).
"""

import argparse
import json
import os
import time

import numpy as np

from child_process import run_workers  # benchmarks/ (the script's folder) is on sys.path
from dit_speed import CONFIGS, NUM_CLASSES, timed, torch_device

SAMPLERS = ("ddim", "dpm_solver", "unipc", "euler")
GUIDANCE = 4.0


def keras_worker(args):
    import keras

    import keras_dit as kd

    config = CONFIGS[args.config]
    backbone = kd.models.DiT(**config, num_classes=NUM_CLASSES, learn_sigma=False, seed=0)
    models = {}
    labels = np.random.default_rng(0).integers(0, NUM_CLASSES, args.batch)
    results = {}
    for name in args.samplers:
        kind = "flow" if name == "euler" else "gaussian"
        if kind not in models:
            objective = kd.diffusion.RectifiedFlow() if kind == "flow" else kd.diffusion.GaussianDiffusion()
            models[kind] = kd.tasks.DiffusionModel(backbone, objective, seed=0)
            models[kind].compile(optimizer=keras.optimizers.AdamW(1e-4), jit_compile=True if args.xla else "auto")
        model = models[kind]
        run = lambda: keras.ops.convert_to_numpy(model.generate(  # noqa: E731  (numpy: waits for the device)
            labels, num_steps=args.steps, sampler=name, guidance_scale=GUIDANCE, seed=0, return_latents=True))
        start = time.perf_counter()
        run()
        first = time.perf_counter() - start
        results[name] = dict(img_s=args.batch / timed(run, args.repeats), first_call_s=first)
    backend = keras.backend.backend()
    plain = "+plain" if os.environ.get("KERAS_DIT_STREAMLINE_TORCH") == "0" else ""
    return dict(name=f"keras_dit[{backend}{'+xla' if args.xla else ''}{plain}]", samplers=results,
                device=str(keras.ops.zeros(()).device),
                load=os.getloadavg()[0])


def diffusers_worker(args):
    import diffusers
    import torch

    config, device = CONFIGS[args.config], torch_device()
    peer = diffusers.DiTTransformer2DModel(
        num_attention_heads=config["num_heads"], attention_head_dim=config["hidden_size"] // config["num_heads"],
        in_channels=config["in_channels"], out_channels=config["in_channels"], num_layers=config["depth"],
        sample_size=config["input_size"], patch_size=config["patch_size"], num_embeds_ada_norm=NUM_CLASSES,
    ).eval().to(device)
    schedulers = {"ddim": diffusers.DDIMScheduler, "dpm_solver": diffusers.DPMSolverMultistepScheduler,
                  "unipc": diffusers.UniPCMultistepScheduler, "euler": diffusers.FlowMatchEulerDiscreteScheduler}
    generator = torch.Generator(device).manual_seed(0)
    labels = torch.randint(0, NUM_CLASSES, (args.batch,), generator=generator, device=device)
    class_input = torch.cat([labels, torch.full_like(labels, NUM_CLASSES)])
    size, channels = config["input_size"], config["in_channels"]
    results = {}
    for name in args.samplers:
        scheduler = schedulers[name]()

        @torch.no_grad()
        def sample():
            scheduler.set_timesteps(args.steps, device=device)
            latents = torch.randn(args.batch, channels, size, size, generator=generator, device=device)
            for t in scheduler.timesteps:
                out = peer(torch.cat([latents, latents]), timestep=t.expand(2 * args.batch),
                           class_labels=class_input).sample
                cond, uncond = out.chunk(2)
                latents = scheduler.step(uncond + GUIDANCE * (cond - uncond), t, latents).prev_sample
            return latents.cpu()  # waits for the device

        start = time.perf_counter()
        sample()
        first = time.perf_counter() - start
        results[name] = dict(img_s=args.batch / timed(sample, args.repeats), first_call_s=first)
    return dict(name="diffusers[torch]", samplers=results, device=device, load=os.getloadavg()[0])


def report(args, runs):
    peer = runs[0]
    print(f"\n{args.config}: {args.batch} images x {args.steps} steps with CFG (guidance {GUIDANCE}), "
          f"{args.repeats} timed calls each, median; img/s (x diffusers with the same scheduler)")
    header = f"{'run':22s} " + " ".join(f"{name:>20s}" for name in args.samplers) + f" {'load':>5s}"
    print(header)
    print("-" * len(header))
    for run in runs:
        cells = []
        for name in args.samplers:
            result = run["samplers"][name]
            result["ratio"] = result["img_s"] / peer["samplers"][name]["img_s"]
            cells.append(f"{result['img_s']:9.3f} ({result['ratio']:4.2f}x)")
        print(f"{run['name']:22s} " + " ".join(f"{cell:>20s}" for cell in cells) + f" {run['load']:5.1f}")
    first = ", ".join(f"{run['name']} {max(r['first_call_s'] for r in run['samplers'].values()):.1f} s"
                      for run in runs)
    print(f"first call (compilation included), slowest sampler: {first}")
    print("devices: " + ", ".join(f"{run['name']} {run['device']}" for run in runs))
    print(json.dumps(dict(benchmark="sampler_speed", config=args.config, batch=args.batch, steps=args.steps,
                          repeats=args.repeats, runs=runs)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="small")
    parser.add_argument("--backends", nargs="+",
                        choices=["jax", "tensorflow", "tensorflow-xla", "torch", "torch-plain"],
                        default=["jax", "tensorflow", "tensorflow-xla", "torch"])
    parser.add_argument("--samplers", nargs="+", choices=SAMPLERS, default=list(SAMPLERS))
    parser.add_argument("--batch", type=int, default=4, help="images per sampling call")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per sampler (the median is reported)")
    done = run_workers(__file__, parser, {"keras": keras_worker, "diffusers": diffusers_worker})
    if done:
        report(*done)


if __name__ == "__main__":
    main()
