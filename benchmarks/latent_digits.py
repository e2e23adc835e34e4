"""What makes latent samples of the digits readable: one latent-diffusion run with the knobs exposed.

Trains (or reloads, ``--vae``) a KL-VAE on the built-in digits at 32 px, prints its PSNR, its latents' per-channel
mean and std and how the digits classifier scores its reconstructions (and reconstructions of latents plus noise:
how forgiving the decoder is), normalises the latents (``--norm``), trains a class-conditional DiT on them and
scores 10 decoded samples per class with ``kd.metrics.evaluate_digits``; writes the grid next to ``--vae``.

    KERAS_BACKEND=jax python benchmarks/latent_digits.py --vae /tmp/vae.keras --norm global
    KERAS_BACKEND=jax python benchmarks/latent_digits.py --vae /tmp/vae.keras --norm channel --lr 1e-4

Prints one JSON line (``{"benchmark": "latent_digits", ...}``).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_dit as kd  # noqa: E402
from keras_dit.data.images import to_float, to_uint8  # noqa: E402
from keras_dit.training_callbacks import image_grid  # noqa: E402


def numpy(x):
    return keras.ops.convert_to_numpy(x)


def train_vae(args, data):
    keras.utils.set_random_seed(args.seed)
    vae = kd.models.KLVAE.from_preset(args.preset, in_channels=1, seed=args.seed)
    trainer = kd.tasks.VAETrainer(vae, perceptual_weight=0.0, kl_weight=args.kl_weight)
    trainer.compile(optimizer=keras.optimizers.Adam(args.vae_lr))
    trainer.fit(data, epochs=args.vae_epochs, verbose=2)
    vae.save(args.vae)
    return vae


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vae", required=True, help="VAE .keras file: reloaded if it exists, else trained and saved")
    parser.add_argument("--preset", default="kl-f4-tiny")
    parser.add_argument("--vae-epochs", type=int, default=6)
    parser.add_argument("--vae-lr", type=float, default=2e-3)
    parser.add_argument("--vae-batch", type=int, default=32)
    parser.add_argument("--kl-weight", type=float, default=1e-6)
    parser.add_argument("--norm", default="channel", choices=["global", "channel"],
                        help="global: one 1/std (Stable Diffusion); channel: per-channel mean and 1/std")
    parser.add_argument("--objective", default="flow", choices=["flow", "eps", "v"])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--patch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    data = kd.data.load_builtin("digits", image_size=32, channels=1, batch_size=args.vae_batch, seed=args.seed)
    images, labels = to_float(data.images), data.condition
    start = time.time()
    vae = keras.saving.load_model(args.vae) if os.path.exists(args.vae) else train_vae(args, data)
    vae_s = time.time() - start
    z = numpy(vae.encode(images).mean)  # (N, 8, 8, C)
    reconstructions = numpy(vae.decode(z))
    noisy = z + 0.3 * z.std(axis=(0, 1, 2)) * np.random.default_rng(0).standard_normal(z.shape)
    result = {
        "benchmark": "latent_digits", "backend": keras.backend.backend(), **vars(args),
        "vae_s": round(vae_s), "psnr_db": round(float(np.mean(numpy(kd.tasks.psnr(images, reconstructions)))), 2),
        "latent_channel_mean": z.mean(axis=(0, 1, 2)).round(3).tolist(),
        "latent_channel_std": z.std(axis=(0, 1, 2)).round(3).tolist(),
        "reconstruction_accuracy": kd.metrics.evaluate_digits(to_uint8(reconstructions), labels)["accuracy"],
        "noisy_latent_accuracy": kd.metrics.evaluate_digits(to_uint8(numpy(vae.decode(noisy))), labels)["accuracy"],
    }
    per_channel = args.norm == "channel"
    kd.compute_scale_factor(vae, images, per_channel=per_channel, shift=per_channel, verbose=0)
    scaled = numpy(vae.scale_latents(z))
    result["scaled_channel_std"] = scaled.std(axis=(0, 1, 2)).round(3).tolist()

    keras.utils.set_random_seed(args.seed)
    backbone = kd.models.DiT(input_size=z.shape[1], patch_size=args.patch, in_channels=z.shape[-1], hidden_size=128,
                             depth=args.depth, num_heads=4, num_classes=10, class_dropout_prob=0.1,
                             learn_sigma=False, seed=args.seed)
    objective = (kd.diffusion.RectifiedFlow() if args.objective == "flow"
                 else kd.diffusion.GaussianDiffusion(prediction=args.objective))
    model = kd.tasks.DiffusionModel(backbone, objective, autoencoder=vae, seed=args.seed)
    model.compile(optimizer=keras.optimizers.AdamW(args.lr, use_ema=True, ema_momentum=0.99))
    start = time.time()
    history = model.fit({"latents": scaled, "condition": labels}, batch_size=64, epochs=args.epochs, verbose=0)
    result.update(dit_s=round(time.time() - start), final_loss=round(history.history["loss"][-1], 4))
    condition = np.repeat(np.arange(10), 10)
    samples = model.generate(condition, num_steps=args.steps, guidance_scale=args.guidance, seed=0)
    scores = kd.metrics.evaluate_digits(samples, condition)
    result.update(accuracy=scores["accuracy"], frechet_distance=round(scores["frechet_distance"], 3))
    grid = os.path.splitext(args.vae)[0] + f"_{args.norm}_{args.objective}_lr{args.lr:g}.png"
    image_grid(samples, [str(c) for c in condition], columns=10).save(grid)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
