"""Training and sampling throughput and peak memory of a keras_dit DiT on each backend, against diffusers.

    python benchmarks/dit_speed.py                               # DiT-S/2 on 32x32x4 latents, float32
    python benchmarks/dit_speed.py --config pixel --backends jax torch
    python benchmarks/dit_speed.py --precision bfloat16
    KERAS_DIT_TUNE_XLA_CPU=0 python benchmarks/dit_speed.py --backends jax     # without keras_dit's XLA:CPU flag

Every run is a fresh subprocess (one Keras backend per process, and its own peak memory): keras_dit on each
backend (``tensorflow-xla``: TensorFlow with ``compile(jit_compile=True)``, which Keras leaves off on a CPU-only
machine), and the peer, diffusers' ``DiTTransformer2DModel`` on PyTorch with the same configuration, batch,
precision and thread count. A training step is forward + backward + AdamW on an epsilon-prediction MSE loss
(``learn_sigma`` off on both sides); sampling is 50 DDIM steps with classifier-free guidance (conditional and
unconditional halves in one batched forward). Each process also times a 2048^2 matmul in its framework; the
largest of those is the machine's GEMM ceiling, and the training FLOP rate (3x the forward's FLOPs, counted from
the configuration) is reported as a fraction of it. Prints a table and one JSON line
(``{"benchmark": "dit_speed", ...}``).
"""

import argparse
import json
import resource
import time

import numpy as np

from child_process import run_workers  # benchmarks/ (the script's folder) is on sys.path

CONFIGS = {
    # DiT-S/2 as in the paper, on the 32x32x4 latents of 256 px images.
    "dit-s2": dict(input_size=32, patch_size=2, in_channels=4, hidden_size=384, depth=12, num_heads=6),
    # DiT-XL/2, the paper's largest, on the same latents (for a GPU: benchmarks/gpu.sh).
    "dit-xl2": dict(input_size=32, patch_size=2, in_channels=4, hidden_size=1152, depth=28, num_heads=16),
    # A small latent DiT (16x16x4), the sampling benchmark's default: a step takes milliseconds on a CPU.
    "small": dict(input_size=16, patch_size=2, in_channels=4, hidden_size=256, depth=6, num_heads=4),
    # A small pixel-space model: 32x32 RGB.
    "pixel": dict(input_size=32, patch_size=2, in_channels=3, hidden_size=256, depth=6, num_heads=4),
}
NUM_CLASSES = 1000


def forward_flops(config, mlp_ratio=4.0):
    """Multiply-add FLOPs (2 per MAC) of one DiT forward for one image, from its configuration."""
    d, p, c = config["hidden_size"], config["patch_size"], config["in_channels"]
    tokens = (config["input_size"] // p) ** 2
    per_token_block = 4 * d * d + 2 * mlp_ratio * d * d + 2 * tokens * d  # qkv + proj, MLP, scores + values
    blocks = config["depth"] * (tokens * per_token_block + 6 * d * d)  # + adaLN modulation
    embed = 2 * tokens * p * p * c * d + 256 * d + d * d  # patches in and out, timestep MLP
    final = 2 * d * d
    return 2 * (blocks + embed + final)


def peak_memory_mib():
    """Peak memory of this process in MiB: the accelerator's peak allocation where the run used one (PyTorch's
    CUDA allocator, JAX's device), else the host's peak resident set."""
    import sys

    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        return sys.modules["torch"].cuda.max_memory_allocated() / 2**20
    if "jax" in sys.modules and sys.modules["jax"].default_backend() != "cpu":
        return sys.modules["jax"].devices()[0].memory_stats()["peak_bytes_in_use"] / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def torch_device():
    """Where the peer runs: ``"cuda"`` where PyTorch sees a GPU (as keras_dit's torch backend then does), else
    ``"cpu"``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def timed(fn, repeats):
    """Seconds per call of ``fn``: the median of ``repeats`` timed calls (after the caller's warm-up), so that a
    call slowed down by another process on a shared machine does not move the figure."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


def gemm_gflops(matmul, make, size=2048, repeats=10):
    a, b = make(size), make(size)
    matmul(a, b)
    return 2 * size**3 / timed(lambda: matmul(a, b), repeats) / 1e9


# ------------------------------------------------------------------------------------------------------------
# Workers (each runs in its own process)
# ------------------------------------------------------------------------------------------------------------


def keras_worker(args):
    import keras

    import keras_dit as kd

    backend = keras.backend.backend()
    dtype = "bfloat16" if args.precision == "bfloat16" else "float32"
    gemm = gemm_gflops(
        lambda a, b: keras.ops.convert_to_numpy(keras.ops.sum(keras.ops.matmul(a, b))),
        lambda n: keras.ops.convert_to_tensor(np.random.rand(n, n), dtype=dtype),
    )
    if args.precision == "bfloat16":
        keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    config = CONFIGS[args.config]
    backbone = kd.models.DiT(**config, num_classes=NUM_CLASSES, learn_sigma=False)
    model = kd.tasks.DiffusionModel(backbone, kd.diffusion.GaussianDiffusion(), seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-4), jit_compile=True if args.xla else "auto")
    rng = np.random.default_rng(0)
    size, channels = config["input_size"], config["in_channels"]
    x = rng.standard_normal((args.batch, size, size, channels)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, args.batch)
    setup_memory = peak_memory_mib()

    step = lambda: model.train_on_batch(x, labels)  # noqa: E731
    for _ in range(args.warmup):
        step()
    train_seconds = timed(step, args.train_steps)

    sample_labels = rng.integers(0, NUM_CLASSES, args.sample_batch)
    sample = lambda steps: keras.ops.convert_to_numpy(model.generate(  # noqa: E731  (numpy: waits for the device)
        sample_labels, num_steps=steps, sampler="ddim", guidance_scale=4.0, seed=0, return_latents=True
    ))
    sample(args.sample_steps)  # compiles the sampling loop (one program per step count, batch and sampler)
    sample_seconds = timed(lambda: sample(args.sample_steps), 1)
    return dict(
        name=f"keras_dit[{backend}{'+xla' if args.xla else ''}]", device=str(keras.ops.zeros(()).device),
        gemm_gflops=gemm, setup_mib=setup_memory, peak_mib=peak_memory_mib(),
        train_img_s=args.batch / train_seconds, sample_img_s=args.sample_batch / sample_seconds,
    )


def diffusers_worker(args):
    import diffusers
    import torch

    config, device = CONFIGS[args.config], torch_device()
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=args.precision == "bfloat16")
    gemm_dtype = torch.bfloat16 if args.precision == "bfloat16" else torch.float32
    gemm = gemm_gflops(lambda a, b: torch.matmul(a, b).sum().item(),
                       lambda n: torch.rand(n, n, dtype=gemm_dtype, device=device))
    head_dim = config["hidden_size"] // config["num_heads"]
    peer = diffusers.DiTTransformer2DModel(
        num_attention_heads=config["num_heads"], attention_head_dim=head_dim, in_channels=config["in_channels"],
        out_channels=config["in_channels"], num_layers=config["depth"], sample_size=config["input_size"],
        patch_size=config["patch_size"], num_embeds_ada_norm=NUM_CLASSES,
    ).to(device)
    optimizer = torch.optim.AdamW(peer.parameters(), lr=1e-4)
    train_scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000)
    generator = torch.Generator(device).manual_seed(0)
    size, channels = config["input_size"], config["in_channels"]
    x = torch.randn(args.batch, channels, size, size, generator=generator, device=device)
    labels = torch.randint(0, NUM_CLASSES, (args.batch,), generator=generator, device=device)
    setup_memory = peak_memory_mib()

    def step():
        noise = torch.randn(x.shape, generator=generator, device=device)
        t = torch.randint(0, 1000, (args.batch,), generator=generator, device=device)
        with autocast:
            prediction = peer(train_scheduler.add_noise(x, noise, t), timestep=t, class_labels=labels).sample
            loss = torch.nn.functional.mse_loss(prediction.float(), noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()  # waits for the device, as Keras' train_on_batch does

    peer.train()
    for _ in range(args.warmup):
        step()
    train_seconds = timed(step, args.train_steps)

    peer.eval()
    scheduler = diffusers.DDIMScheduler(num_train_timesteps=1000)
    sample_labels = torch.randint(0, NUM_CLASSES, (args.sample_batch,), generator=generator, device=device)
    class_input = torch.cat([sample_labels, torch.full_like(sample_labels, NUM_CLASSES)])

    @torch.no_grad()
    def sample(steps):
        scheduler.set_timesteps(steps, device=device)
        latents = torch.randn(args.sample_batch, channels, size, size, generator=generator, device=device)
        for t in scheduler.timesteps:
            with autocast:
                eps = peer(torch.cat([latents, latents]), timestep=t.expand(2 * args.sample_batch),
                           class_labels=class_input).sample.float()
            cond, uncond = eps.chunk(2)
            latents = scheduler.step(uncond + 4.0 * (cond - uncond), t, latents).prev_sample
        return latents.cpu()  # waits for the device

    sample(2)
    sample_seconds = timed(lambda: sample(args.sample_steps), 1)
    return dict(
        name="diffusers[torch]", device=device, gemm_gflops=gemm, setup_mib=setup_memory,
        peak_mib=peak_memory_mib(),
        train_img_s=args.batch / train_seconds, sample_img_s=args.sample_batch / sample_seconds,
    )


# ------------------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------------------


def report(args, runs):
    peer = runs[0]
    ceiling = max(run["gemm_gflops"] for run in runs)
    flops = 3 * forward_flops(CONFIGS[args.config])
    print(f"\n{args.config}, batch {args.batch}, {args.precision}; sampling: {args.sample_batch} images x "
          f"{args.sample_steps} DDIM steps with CFG; GEMM ceiling {ceiling:.0f} GFLOP/s")
    header = f"{'run':22s} {'train img/s':>11s} {'x peer':>7s} {'% ceiling':>9s} {'sample img/s':>12s} " \
             f"{'x peer':>7s} {'peak MiB':>9s} {'GEMM GFLOP/s':>12s}"
    print(header)
    print("-" * len(header))
    for run in runs:
        run["train_ratio"] = run["train_img_s"] / peer["train_img_s"]
        run["sample_ratio"] = run["sample_img_s"] / peer["sample_img_s"]
        run["ceiling_fraction"] = run["train_img_s"] * flops / 1e9 / ceiling
        print(f"{run['name']:22s} {run['train_img_s']:11.2f} {run['train_ratio']:7.2f} "
              f"{100 * run['ceiling_fraction']:8.1f}% {run['sample_img_s']:12.3f} {run['sample_ratio']:7.2f} "
              f"{run['peak_mib']:9.0f} {run['gemm_gflops']:12.0f}")
    summary = dict(benchmark="dit_speed", config=args.config, precision=args.precision, batch=args.batch,
                   sample_batch=args.sample_batch, sample_steps=args.sample_steps, gemm_ceiling_gflops=ceiling,
                   train_gflop_per_image=flops / 1e9, runs=runs)
    print(json.dumps(summary))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="dit-s2")
    parser.add_argument("--backends", nargs="+", choices=["jax", "tensorflow", "tensorflow-xla", "torch"],
                        default=["jax", "tensorflow", "tensorflow-xla", "torch"])
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--batch", type=int, default=8, help="training batch")
    parser.add_argument("--train-steps", type=int, default=10, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    parser.add_argument("--sample-batch", type=int, default=4, help="images per sampling call")
    parser.add_argument("--sample-steps", type=int, default=50)
    done = run_workers(__file__, parser, {"keras": keras_worker, "diffusers": diffusers_worker})
    if done:
        report(*done)


if __name__ == "__main__":
    main()
