"""KLVAE: shapes for each downsampling factor, the posterior, scaling, serialization and input errors."""

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import assert_close, gradient, run_serialization_test, to_numpy


@pytest.fixture(scope="module")
def vae():
    return kd.models.KLVAE.from_preset("kl-f4-tiny", seed=3)


def images(batch=2, size=16, channels=3):
    return np.random.default_rng(0).uniform(-1, 1, (batch, size, size, channels)).astype("float32")


@pytest.mark.parametrize("multipliers,factor", [((1, 2), 2), ((1, 2, 2), 4), ((1, 1, 2, 2), 8)])
def test_downsampling_factor_and_shapes(multipliers, factor):
    vae = kd.models.KLVAE(base_channels=4, channel_multipliers=multipliers, num_res_blocks=1, latent_channels=2,
                          norm_groups=2, mid_attention=False)
    assert vae.downsampling_factor == factor
    posterior = vae.encode(images(size=16))
    assert tuple(posterior.mean.shape) == (2, 16 // factor, 16 // factor, 2)
    assert tuple(vae.decode(posterior.mean).shape) == (2, 16, 16, 3)


def test_posterior(vae):
    posterior = vae.encode(images())
    mean, logvar = to_numpy(posterior.mean), to_numpy(posterior.logvar)
    assert mean.shape == logvar.shape == (2, 4, 4, 4)
    expected_kl = 0.5 * np.sum(mean**2 + np.exp(logvar) - 1.0 - logvar, axis=(1, 2, 3))
    assert_close(posterior.kl(), expected_kl, atol=1e-4, rtol=1e-5, what="KL")
    a, b = to_numpy(posterior.sample(seed=7)), to_numpy(posterior.sample(seed=7))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, mean), "a sample must differ from the mean"
    # the VAE's own generator advances: two draws differ
    assert not np.allclose(to_numpy(posterior.sample()), to_numpy(posterior.sample()))
    z = (a - mean) / np.exp(0.5 * logvar)
    assert abs(z.mean()) < 0.5 and 0.5 < z.std() < 1.5, "sample = mean + std * N(0, 1)"


def test_call_reconstructs_from_mean(vae):
    x = images()
    assert_close(vae(x), vae.decode(vae.encode(x).mean), atol=1e-6)


def test_any_size_divisible_by_the_factor(vae):
    assert tuple(vae.encode(images(size=8)).mean.shape) == (2, 2, 2, 4)
    assert tuple(vae.encode(np.zeros((1, 8, 12, 3), "float32")).mean.shape) == (1, 2, 3, 4)


def test_scale_and_shift(vae):
    z = np.random.default_rng(1).standard_normal((2, 4, 4, 4)).astype("float32")
    try:
        vae.scale_factor, vae.shift_factor = [0.5, 1.0, 2.0, 4.0], 0.25
        scaled = to_numpy(vae.scale_latents(z))
        assert_close(scaled, (z - 0.25) * np.array([0.5, 1.0, 2.0, 4.0]), atol=1e-6)
        assert_close(vae.unscale_latents(scaled), z, atol=1e-5)
    finally:
        vae.scale_factor = vae.shift_factor = None
    assert_close(vae.scale_latents(z), z, atol=0), "no factors: identity"


def test_scaling_is_differentiable(vae):
    """Gradients flow through (un)scaling: a tensor being differentiated (torch: requires_grad) goes through."""
    z = np.random.default_rng(2).standard_normal((2, 4, 4, 4)).astype("float32")
    scale = np.array([0.5, 1.0, 2.0, 4.0], "float32")
    try:
        vae.scale_factor, vae.shift_factor = scale.tolist(), 0.25
        assert_close(gradient(vae.scale_latents, z), np.broadcast_to(scale, z.shape), atol=1e-6, what="d scaled / dz")
        assert_close(gradient(vae.unscale_latents, z), np.broadcast_to(1 / scale, z.shape), atol=1e-6,
                     what="d unscaled / dz")
    finally:
        vae.scale_factor = vae.shift_factor = None
    assert_close(gradient(vae.scale_latents, z), np.ones_like(z), atol=0, what="no factors: identity gradient")


def test_low_precision_latents_use_float32_factors(vae):
    z = np.random.default_rng(3).standard_normal((1, 2, 2, 4)).astype("float16")
    try:
        vae.scale_factor = 0.18215  # not a float16 number: a rounded factor would be off by ~1e-4 relative
        scaled = to_numpy(vae.scale_latents(keras.ops.convert_to_tensor(z)))
    finally:
        vae.scale_factor = None
    assert scaled.dtype == np.float32
    assert_close(scaled, z.astype("float32") * np.float32(0.18215), atol=1e-7, what="float16 latents scaled")


def test_serialization_keeps_factors(tmp_path):
    vae = kd.models.KLVAE.from_preset("kl-f4-tiny", mid_attention=True)
    vae.scale_factor, vae.shift_factor = 0.3, [0.1, 0.2, 0.3, 0.4]
    loaded = run_serialization_test(vae, images(), tmp_path, atol=1e-5)
    assert loaded.scale_factor == 0.3 and loaded.shift_factor == [0.1, 0.2, 0.3, 0.4]


def test_kl_f8_preset_layout():
    config = kd.models.KLVAE.presets["kl-f8"]
    assert config["channel_multipliers"] == (1, 2, 4, 4) and config["latent_channels"] == 4
    vae = kd.models.KLVAE.from_preset("kl-f8", base_channels=8, norm_groups=4)  # SD layout, narrow
    assert vae.downsampling_factor == 8
    assert tuple(vae.encode(images(1, 16)).mean.shape) == (1, 2, 2, 4)


def test_without_normalisation(tmp_path):
    """``norm_groups=None`` (the ``kl-f2-rgb`` preset): no GroupNorm anywhere, any width, and a ``.keras`` round trip."""
    vae = kd.models.KLVAE.from_preset("kl-f2-rgb", base_channels=5, seed=0)  # widths 5 and 10: the default 32 groups would refuse
    kinds = {type(layer).__name__ for layer in vae._flatten_layers(include_self=False)}
    assert "GroupNormalization" not in kinds and "Identity" in kinds, kinds
    assert tuple(vae.encode(images(1, 32)).mean.shape) == (1, 16, 16, 4)
    grouped = kd.models.KLVAE.from_preset("kl-f2-rgb", base_channels=4, norm_groups=2, seed=0)
    assert grouped.count_params() > kd.models.KLVAE.from_preset("kl-f2-rgb", base_channels=4).count_params()
    loaded = run_serialization_test(vae, images(1, 8), tmp_path, atol=1e-5)
    assert loaded.norm_groups is None


def test_bad_inputs(vae):
    with pytest.raises(ValueError, match=r"size 18x18 is not divisible by the downsampling factor 4"):
        vae.encode(np.zeros((1, 18, 18, 3), "float32"))
    with pytest.raises(ValueError, match=r"images must be \(B, H, W, 3\)"):
        vae.encode(np.zeros((1, 16, 16, 1), "float32"))
    with pytest.raises(ValueError, match=r"latents must be \(B, H, W, 4\)"):
        vae.decode(np.zeros((1, 4, 4, 3), "float32"))
    with pytest.raises(ValueError, match="divisible by norm_groups=32"):
        kd.models.KLVAE(base_channels=8)
    with pytest.raises(ValueError, match="Did you mean 'kl-f8'"):
        kd.models.KLVAE.from_preset("kl-f9")
