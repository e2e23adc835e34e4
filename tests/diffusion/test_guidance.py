"""Classifier-free guidance: one batched call, ``uncond + s (cond - uncond)``, guided channels, the guidance
interval in noise levels, dict conditions, and the interval check."""

import numpy as np
import pytest

import keras_dit as kd
from keras_dit.diffusion.guidance import check_guidance_interval, guided_model_fn, noise_level
from tests.helpers import assert_close, to_numpy

X = np.random.default_rng(0).standard_normal((2, 2, 2, 3)).astype("float32")
COND, UNCOND = np.array([1.0, 2.0], "float32"), np.array([-1.0, 0.5], "float32")


class Denoiser:
    """``denoise(x, t, c) = c x + t / 1000`` per sample, counting calls and their batch sizes."""

    def __init__(self):
        self.batches = []

    def __call__(self, x, t, condition):
        self.batches.append(int(x.shape[0]))
        c = condition["c"] if isinstance(condition, dict) else condition
        return x * c[:, None, None, None] + t[:, None, None, None] / 1000.0


def expected(t, scale, cond=COND, uncond=UNCOND):
    t = np.asarray(t, np.float64)[:, None, None, None] / 1000.0
    c, u = X * cond[:, None, None, None] + t, X * uncond[:, None, None, None] + t
    return u + scale[:, None, None, None] * (c - u) if np.ndim(scale) else u + scale * (c - u)


def test_scale_one_is_one_conditional_call():
    denoise = Denoiser()
    t = np.array([10.0, 20.0], "float32")
    assert_close(guided_model_fn(denoise, COND, UNCOND, 1.0)(X, t), expected(t, 1.0), atol=1e-6)
    assert_close(guided_model_fn(denoise, COND, None, 4.0)(X, t), expected(t, 1.0), atol=1e-6)
    assert denoise.batches == [2, 2]


def test_guidance_combines_both_branches_in_one_doubled_call():
    denoise = Denoiser()
    t = np.array([10.0, 20.0], "float32")
    out = guided_model_fn(denoise, COND, UNCOND, 3.0)(X, t)
    assert denoise.batches == [4]
    assert_close(out, expected(t, 3.0), atol=1e-5, what="uncond + s (cond - uncond)")
    dict_out = guided_model_fn(Denoiser(), {"c": COND}, {"c": UNCOND}, 3.0)(X, t)
    assert_close(dict_out, out, atol=0.0, what="dict conditions")


def test_guided_channels_take_the_rest_from_the_conditional_branch():
    t = np.array([10.0, 20.0], "float32")
    out = to_numpy(guided_model_fn(Denoiser(), COND, UNCOND, 3.0, guided_channels=2)(X, t))
    assert_close(out[..., :2], expected(t, 3.0)[..., :2], atol=1e-5)
    assert_close(out[..., 2:], expected(t, 1.0)[..., 2:], atol=1e-5, what="unguided channels")


def test_interval_guides_only_inside_it():
    objective = kd.diffusion.GaussianDiffusion()  # 1000 timesteps: t / 999 is the noise level
    t = np.array([999.0, 499.5], "float32")  # levels 1.0 (outside) and 0.5 (inside)
    assert_close(noise_level(objective, t), np.array([1.0, 0.5]), atol=1e-6)
    assert_close(noise_level(kd.diffusion.RectifiedFlow(), t[:1] / 1000), t[:1] / 1000, atol=0.0)
    out = guided_model_fn(Denoiser(), COND, UNCOND, 3.0, interval=(0.1, 0.7), objective=objective)(X, t)
    assert_close(out, expected(t, np.array([1.0, 3.0])), atol=1e-5, what="guidance inside the interval only")


def test_interval_check():
    assert check_guidance_interval(None) is None and check_guidance_interval([0, 0.5]) == (0.0, 0.5)
    with pytest.raises(ValueError, match=r"0 <= lo <= hi <= 1 .* got \(0.8, 0.2\)"):
        check_guidance_interval((0.8, 0.2))
    with pytest.raises(ValueError, match="a \\(lo, hi\\) pair of numbers in \\[0, 1\\], got 0.5"):
        check_guidance_interval(0.5)
