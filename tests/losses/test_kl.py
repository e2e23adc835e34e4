"""The Gaussian KL against its closed form and its known values."""

import numpy as np

import keras_dit as kd
from tests.helpers import assert_close


def test_gaussian_kl_matches_closed_form():
    rng = np.random.default_rng(0)
    mean, logvar = rng.standard_normal((3, 2, 2, 4)), rng.standard_normal((3, 2, 2, 4))
    expected = np.array([np.sum(np.log(1 / np.exp(0.5 * lv)) + (np.exp(lv) + m**2) / 2 - 0.5) for m, lv in zip(mean, logvar)])
    assert_close(kd.losses.gaussian_kl(mean.astype("float32"), logvar.astype("float32")), expected, atol=1e-4)


def test_gaussian_kl_is_zero_only_at_the_prior():
    zeros = np.zeros((2, 3, 3, 2), "float32")
    assert_close(kd.losses.gaussian_kl(zeros, zeros), np.zeros(2), atol=1e-7)
    assert np.all(np.asarray(kd.losses.gaussian_kl(zeros + 0.1, zeros)) > 0)
