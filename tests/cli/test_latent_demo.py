"""``keras-dit demo -c latent-digits``: the whole latent pipeline (train-vae, scale-factor, cache-latents, train,
sample, score) in one command, made tiny; and, when asked for, the real preset reaching its quality target."""

import os

import keras
import numpy as np
import pytest

from keras_dit.cli.main import run

TINY = {
    "data.image_size": 8, "data.limit": 64, "data.batch_size": 32, "vae.epochs": 1, "model.patch_size": 1,
    "model.hidden_size": 32, "model.depth": 1, "model.num_heads": 2, "train.epochs": 1, "train.verbose": 0,
    "train.tensorboard": False, "train.sample_every": 0, "sample.per_class": 1, "sample.num_steps": 2,
}


def demo_argv(out, sets):
    paths = {"output_dir": out, "data.latent_cache": f"{out}/latents.npz", "vae.checkpoint": f"{out}/vae.keras",
             "vae.cache": f"{out}/latents.npz", "model.autoencoder": f"{out}/vae.keras"}
    return ["demo", "-c", "latent-digits", *[a for k, v in {**paths, **sets}.items() for a in ("--set", f"{k}={v}")]]


@pytest.mark.large  # trains a VAE: ~15 s on JAX, ~50 s on TensorFlow
def test_latent_demo_runs_every_stage_and_writes_a_self_contained_model(tmp_path):
    out = str(tmp_path / "demo")
    results = run(demo_argv(out, TINY))
    assert 0.0 <= results["accuracy"] <= 1.0 and results["num_images"] == 10
    report = open(os.path.join(out, "report.txt")).read()
    for stage in ("VAE training", "scale factor", "latent cache", "DiT training", "sampling and scoring"):
        assert stage in report
    vae = keras.saving.load_model(os.path.join(out, "vae.keras"))
    assert np.shape(vae.scale_factor) == (4,) and np.shape(vae.shift_factor) == (4,)  # per channel
    os.remove(os.path.join(out, "vae.keras"))
    os.remove(os.path.join(out, "latents.npz"))
    model = keras.saving.load_model(os.path.join(out, "model.keras"))  # alone: the VAE file is gone
    images = model.generate([3, 7], num_steps=2, seed=0)
    assert images.dtype == np.uint8 and images.shape == (2, 8, 8, 1)
    with np.load(os.path.join(out, "samples", "samples.npz")) as npz:
        assert npz["images"].shape == (10, 8, 8, 1)


@pytest.mark.large
@pytest.mark.skipif(not os.environ.get("KERAS_DIT_TARGET"),
                    reason="the full latent demo (minutes on 2 cores); run with KERAS_DIT_TARGET=1")
def test_latent_demo_reaches_its_target(tmp_path):
    """The shipped preset: decoded samples recognised as their class >= 90% of the time."""
    results = run(demo_argv(str(tmp_path / "demo"), {"train.verbose": 0, "train.tensorboard": False}))
    assert results["accuracy"] >= 0.9, results
