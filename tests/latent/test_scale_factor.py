"""compute_scale_factor: 1 / std of the latents, per channel, with a shift, stored on the VAE."""

import numpy as np
import pytest

import keras_dit as kd
from keras_dit.latent.scale_factor import compute_scale_factor
from tests.helpers import to_numpy


@pytest.fixture(scope="module")
def vae():
    return kd.models.KLVAE.from_preset("kl-f4-tiny", seed=0)


@pytest.fixture(scope="module")
def data(vae):
    images = np.random.default_rng(0).uniform(-1, 1, (10, 8, 8, 3)).astype("float32")
    return images, to_numpy(vae.encode(images).mean)


def test_global_factor_is_inverse_std(vae, data):
    images, latents = data
    scale = compute_scale_factor(vae, images, batch_size=4, verbose=0)
    assert scale == pytest.approx(1.0 / latents.std(), rel=1e-4)
    assert vae.scale_factor == scale and vae.shift_factor is None
    assert vae.get_config()["scale_factor"] == scale, "stored in the VAE's config"
    assert np.std(to_numpy(vae.scale_latents(latents))) == pytest.approx(1.0, rel=1e-4)


def test_per_channel_with_shift_and_labelled_batches(vae, data):
    images, latents = data
    labels = np.arange(len(images))
    batches = [(images[i:i + 3], labels[i:i + 3]) for i in range(0, len(images), 3)]  # labels are ignored
    scale = compute_scale_factor(vae, batches, per_channel=True, shift=True, verbose=0)
    flat = latents.reshape(-1, vae.latent_channels)
    np.testing.assert_allclose(scale, 1.0 / flat.std(axis=0), rtol=1e-4)
    np.testing.assert_allclose(vae.shift_factor, flat.mean(axis=0), rtol=1e-4, atol=1e-6)
    scaled = to_numpy(vae.scale_latents(latents)).reshape(-1, vae.latent_channels)
    np.testing.assert_allclose(scaled.std(axis=0), 1.0, rtol=1e-4)
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-4)


def test_max_batches_and_progress_bar(vae, data, capsys):
    images, latents = data
    scale = compute_scale_factor(vae, images, batch_size=4, max_batches=1, store=False)
    assert scale == pytest.approx(1.0 / latents[:4].std(), rel=1e-4)
    assert "1/1" in capsys.readouterr().out


def test_empty_and_bad_data(vae):
    with pytest.raises(ValueError, match="empty"):
        compute_scale_factor(vae, [], verbose=0)
    with pytest.raises(ValueError, match="not divisible by the downsampling factor 4"):
        compute_scale_factor(vae, np.zeros((2, 10, 10, 3), "float32"), verbose=0)
    pixels = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype("float32")  # before: accepted
    with pytest.raises(ValueError, match=r"values in \[0, 255\]; expected images in \[-1, 1\]"):
        compute_scale_factor(vae, (pixels, np.zeros(2)), verbose=0)
