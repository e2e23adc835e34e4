"""``keras-dit train`` on a latent cache, kept fast: an untrained VAE (no train-vae) and one tiny cache. The
sample grids decoded by the cache's VAE, the early error without it, and resuming in the uninterrupted order."""

import os

import numpy as np
import pytest
from PIL import Image

import keras_dit as kd
from keras_dit.cli.builders import load_vae, read_condition_info
from keras_dit.cli.commands import sample_conditions
from keras_dit.cli.config import load_config
from keras_dit.cli.main import run
from keras_dit.data.latent_cache import LatentDataset
from keras_dit.training_callbacks import generate_images, image_grid
from tests.cli.test_config import run_error
from tests.cli.test_latent_pipeline import SIZE, latent_argv


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A folder with an untrained 1-channel VAE (vae.keras) and the latent cache it wrote (latents.npz)."""
    out = str(tmp_path_factory.mktemp("latent_training"))
    kd.models.KLVAE.from_preset("kl-f4-tiny", in_channels=1, seed=0).save(os.path.join(out, "vae.keras"))
    run(["cache-latents", *latent_argv(out)])
    return out


def train_argv(cache_dir, out, *extra):
    """``latent_argv`` training from the cache in ``cache_dir``, writing the run to ``out``."""
    return latent_argv(cache_dir, "--set", f"output_dir={out}", "--set", "train.sample_every=1", *extra)


def test_sample_grid_decoded_by_the_cache_vae(cache_dir, tmp_path):
    out = str(tmp_path / "run")
    model = run(["train", *train_argv(cache_dir, out)])
    assert model.autoencoder is None  # trained on latents: the grid needs the cache's VAE to decode
    grid = np.asarray(Image.open(os.path.join(out, "grids", "epoch_001.png")))
    # what the grid should show: the run's conditions and sampler settings, decoded by the VAE of the config
    config = load_config(os.path.join(out, "config.yaml"))
    conditions, captions, _ = sample_conditions({**config, "sample.per_class": 1}, read_condition_info(out))
    images = generate_images(model, load_vae(config["model.autoencoder"]), condition=conditions, seed=0,
                             num_steps=config["sample.num_steps"], guidance_scale=config["sample.guidance_scale"])
    assert images.shape == (len(conditions), SIZE, SIZE, 1)
    expected = np.asarray(image_grid(images, captions, columns=len(images)))
    assert grid.shape == expected.shape
    assert np.abs(grid.astype(int) - expected).max() <= 1, "the grid shows the VAE-decoded samples"


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
