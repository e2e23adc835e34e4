"""``keras-dit train`` on a latent cache, kept fast: an untrained VAE (no train-vae) and one tiny cache. The model
holds the cache's VAE (its model.keras makes images alone), the early errors without it or its scale factor, and
resuming in the uninterrupted order."""

import os

import keras
import numpy as np
import pytest
from PIL import Image

import keras_dit as kd
from keras_dit.cli.commands import sample_conditions
from keras_dit.cli.config import load_config
from keras_dit.cli.main import run
from keras_dit.latent.latent_cache import LatentDataset
from keras_dit.training_callbacks import image_grid
from tests.helpers import LATENT_SIZE as SIZE
from tests.helpers import latent_argv, run_error


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A folder with an untrained 1-channel VAE (vae.keras, scale factor 0.5, shift 0.1) and the latent cache it
    wrote (latents.npz)."""
    out = str(tmp_path_factory.mktemp("latent_training"))
    vae = kd.models.KLVAE.from_preset("kl-f4-tiny", in_channels=1, seed=0, scale_factor=0.5, shift_factor=0.1)
    vae.save(os.path.join(out, "vae.keras"))
    run(["cache-latents", *latent_argv(out)])
    return out


def train_argv(cache_dir, out, *extra):
    """``latent_argv`` training from the cache in ``cache_dir``, writing the run to ``out``."""
    return latent_argv(cache_dir, "--set", f"output_dir={out}", "--set", "train.sample_every=1", *extra)


def test_model_trained_on_the_cache_holds_its_vae_and_makes_images_alone(cache_dir, tmp_path):
    out = str(tmp_path / "run")
    run(["train", *train_argv(cache_dir, out)])
    model = keras.saving.load_model(os.path.join(out, "model.keras"))  # nothing else: no VAE file, no config
    vae = keras.saving.load_model(os.path.join(cache_dir, "vae.keras"))
    assert isinstance(model.autoencoder, kd.models.KLVAE) and not model.autoencoder.trainable
    factors = [keras.ops.convert_to_numpy(f) for f in model.latent_factors()]
    assert np.allclose(factors, [0.5, 0.1])  # the cache's factors, which the grid must undo
    for mine, theirs in zip(model.autoencoder.weights, vae.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(mine), keras.ops.convert_to_numpy(theirs))
    config = load_config(os.path.join(out, "config.yaml"))
    conditions, captions, _, _ = sample_conditions({**config, "sample.per_class": 1}, model.backbone.conditioner)
    kwargs = dict(condition=conditions, seed=0, num_steps=config["sample.num_steps"],
                  guidance_scale=config["sample.guidance_scale"])
    images = model.generate(**kwargs)
    assert images.dtype == np.uint8 and images.shape == (len(conditions), SIZE, SIZE, 1)
    latents = model.generate(return_latents=True, **kwargs)
    decoded = keras.ops.convert_to_numpy(vae.decode(latents / 0.5 + 0.1))
    assert np.abs(images.astype(int) - np.clip(np.round((decoded + 1) * 127.5), 0, 255)).max() <= 1
    # the grid written in training shows the same decoded samples
    grid = np.asarray(Image.open(os.path.join(out, "grids", "epoch_001.png")))
    expected = np.asarray(image_grid(images, captions, columns=len(images)))
    assert grid.shape == expected.shape and np.abs(grid.astype(int) - expected).max() <= 1


def test_older_latent_model_without_its_vae(cache_dir, tmp_path):
    """A model.keras from before models carried their VAE (no autoencoder, scale_factor=1.0) says what to do."""
    model = run(["train", *train_argv(cache_dir, str(tmp_path / "run"), "--set", "train.sample_every=0")])
    old = kd.tasks.DiffusionModel(model.backbone, model.objective, scale_factor=1.0, seed=0)
    old.save(tmp_path / "old.keras")
    old = keras.saving.load_model(tmp_path / "old.keras")
    with pytest.raises(ValueError, match=r"holds no autoencoder.*attach_autoencoder"):
        old.generate([0, 1], num_steps=2)
    old.attach_autoencoder(keras.saving.load_model(os.path.join(cache_dir, "vae.keras")))
    attached = old.generate([0, 1], num_steps=2, seed=0).astype(int)
    assert np.abs(attached - model.generate([0, 1], num_steps=2, seed=0)).max() <= 1  # float round-off in uint8


def test_vae_without_a_scale_factor_is_refused(cache_dir, tmp_path, capsys):
    unscaled = tmp_path / "unscaled.keras"
    kd.models.KLVAE.from_preset("kl-f4-tiny", in_channels=1, seed=0).save(unscaled)
    for command, key in (("train", "model.autoencoder"), ("cache-latents", "vae.checkpoint")):
        line = run_error(capsys, [command, *train_argv(cache_dir, str(tmp_path / "run"), "--set", f"{key}={unscaled}")])
        assert "unscaled.keras" in line and "no scale factor" in line and "keras-dit scale-factor" in line
    assert not (tmp_path / "run").exists()


def test_missing_vae_stops_training_before_any_work(cache_dir, tmp_path, capsys):
    out = tmp_path / "run"
    line = run_error(capsys, ["train", *train_argv(cache_dir, out, "--set", f"model.autoencoder={tmp_path}/no.keras")])
    assert "does not exist" in line and "no.keras" in line
    assert not out.exists(), "nothing is written before the VAE is found"


def test_resume_continues_in_the_order_of_an_uninterrupted_run(cache_dir, tmp_path, monkeypatch):
    epochs = [[]]  # the cache's batches, one list per pass (Keras' own passes before training included)
    real_getitem, real_epoch_end = LatentDataset.__getitem__, LatentDataset.on_epoch_end

    def getitem(self, index):
        batch = real_getitem(self, index)
        epochs[-1].append(batch["latents"])
        return batch

    def epoch_end(self):
        real_epoch_end(self)
        epochs.append([])

    monkeypatch.setattr(LatentDataset, "__getitem__", getitem)
    monkeypatch.setattr(LatentDataset, "on_epoch_end", epoch_end)

    def passes(*argv):
        """Train; the batches of each pass over the cache, the last epoch trained last."""
        epochs[:] = [[]]
        run(["train", *argv, "--set", "train.sample_every=0"])
        return [batches for batches in epochs if batches]

    *_, first, uninterrupted = passes(*train_argv(cache_dir, str(tmp_path / "whole"), "--set", "train.epochs=2"))
    assert len(first) == len(uninterrupted) == 2
    assert not np.array_equal(first[0], uninterrupted[0]), "each epoch has its own order"
    split = str(tmp_path / "split")
    passes(*train_argv(cache_dir, split, "--set", "train.epochs=1"))
    resumed = passes("--resume", *train_argv(cache_dir, split, "--set", "train.epochs=2"))[-1]
    assert len(resumed) == len(uninterrupted)
    for got, expected in zip(resumed, uninterrupted):
        np.testing.assert_array_equal(got, expected, err_msg="the resumed epoch's batches differ from the "
                                                             "uninterrupted run's")
