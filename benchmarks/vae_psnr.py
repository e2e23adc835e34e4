"""Reconstruction PSNR of the demo KL-VAE trained on scikit-learn's digits, and its time per training step.

The 8x8 digits are upsampled to 32 px (bilinear), made RGB and scaled to [-1, 1]; the last 297 images are held
out. The ``kl-f4-demo`` VAE trains for a fixed number of steps with ``VAETrainer`` (L1 + KL, plus the VGG19
perceptual term when ``--vgg`` is given), then reconstructs the held-out images from their posterior means.
A reference row gives the PSNR of plain bilinear down/up-sampling through the same 8x8 bottleneck.

    KERAS_BACKEND=jax python benchmarks/vae_psnr.py --steps 300
    KERAS_BACKEND=torch python benchmarks/vae_psnr.py --steps 100 --vgg random   # time with the VGG19 term

Prints a table and one JSON line (``{"benchmark": "vae_psnr", ...}``).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import keras_dit as kd  # noqa: E402
from keras_dit.latent.vae_trainer import psnr  # noqa: E402


def resize(images, size):
    """(N, H, W) floats -> (N, size, size) with PIL's bilinear filter."""
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])


def digits(size=32):
    from sklearn.datasets import load_digits

    small = (load_digits().images / 16.0).astype("float32")  # (1797, 8, 8) in [0, 1]
    big = np.clip(resize(small, size), 0.0, 1.0) * 2.0 - 1.0
    return np.repeat(big[..., None], 3, axis=-1).astype("float32")  # (N, size, size, 3) in [-1, 1]


class RandomBatches(keras.utils.PyDataset):
    """``steps`` batches drawn from a seeded permutation of the training images."""

    def __init__(self, images, batch_size, steps, seed):
        super().__init__()
        self.images, self.batch_size, self.steps = images, batch_size, steps
        rng = np.random.default_rng(seed)
        per_epoch = len(images) // batch_size
        self.order = np.concatenate([rng.permutation(len(images))[: per_epoch * batch_size]
                                     for _ in range(steps // per_epoch + 1)])

    def __len__(self):
        return self.steps

    def __getitem__(self, i):
        return self.images[self.order[i * self.batch_size:(i + 1) * self.batch_size]]


class StepTimer(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self.start)


def mean_psnr(images, reconstructions):
    return float(np.mean(keras.ops.convert_to_numpy(psnr(images, reconstructions))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--preset", default="kl-f4-demo")
    parser.add_argument("--kl-weight", type=float, default=1e-6)
    parser.add_argument("--vgg", default="none",
                        help="'none' (no perceptual term), 'random', 'imagenet' or a VGG19 no-top weights file")
    parser.add_argument("--perceptual-weight", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    images = digits()
    train, test = images[:1500], images[1500:]
    vae = kd.models.KLVAE.from_preset(args.preset, seed=args.seed)
    perceptual = None
    if args.vgg != "none":
        perceptual = kd.losses.VGGPerceptualLoss(weights=None if args.vgg == "random" else args.vgg)
    trainer = kd.tasks.VAETrainer(vae, perceptual_weight=args.perceptual_weight if perceptual else 0.0,
                                  kl_weight=args.kl_weight, perceptual=perceptual)
    trainer.compile(optimizer=keras.optimizers.Adam(args.learning_rate))
    timer = StepTimer()
    start = time.perf_counter()
    history = trainer.fit(RandomBatches(train, args.batch_size, args.steps, args.seed), epochs=1, verbose=0,
                          callbacks=[timer])
    wall = time.perf_counter() - start
    steady = timer.times[min(5, len(timer.times) - 1):]  # the first steps include compilation

    test_rec = trainer.predict(test, batch_size=100, verbose=0)["reconstruction"]
    train_rec = trainer.predict(train[:297], batch_size=100, verbose=0)["reconstruction"]
    f = vae.downsampling_factor
    bottleneck = resize(resize(test[..., 0], test.shape[1] // f), test.shape[1])
    result = {
        "benchmark": "vae_psnr", "backend": keras.backend.backend(), "preset": args.preset,
        "params": int(vae.count_params()), "latent_shape": [test.shape[1] // f] * 2 + [vae.latent_channels],
        "steps": args.steps, "batch_size": args.batch_size, "vgg": args.vgg,
        "first_step_s": round(timer.times[0], 3), "median_step_s": round(float(np.median(steady)), 4),
        "train_wall_s": round(wall, 1),
        "psnr_test_db": round(mean_psnr(test, test_rec), 2),
        "psnr_train_db": round(mean_psnr(train[:297], train_rec), 2),
        "psnr_bilinear_bottleneck_db": round(mean_psnr(test, np.repeat(bottleneck[..., None], 3, -1)), 2),
        "final_reconstruction_l1": round(float(history.history["reconstruction"][-1]), 4),
    }
    rows = [
        ("backend / preset", f"{result['backend']} / {args.preset} ({result['params']:,} params)"),
        ("steps x batch", f"{args.steps} x {args.batch_size} (perceptual: {args.vgg})"),
        ("time per step (median; first)", f"{result['median_step_s']} s; {result['first_step_s']} s"),
        ("PSNR held-out / train", f"{result['psnr_test_db']} dB / {result['psnr_train_db']} dB"),
        (f"PSNR bilinear through {test.shape[1] // f}x{test.shape[1] // f}", f"{result['psnr_bilinear_bottleneck_db']} dB"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
