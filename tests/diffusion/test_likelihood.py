"""Likelihood terms: against the NumPy transcription, and the properties that define them."""

import numpy as np

import keras_dit as kd
from tests.diffusion.reference import discretized_log_likelihood, normal_kl
from tests.helpers import assert_close, to_numpy


def test_normal_kl():
    rng = np.random.default_rng(0)
    m1, v1, m2, v2 = (rng.standard_normal((3, 5)).astype("float32") for _ in range(4))
    assert_close(kd.diffusion.normal_kl(m1, v1, m2, v2), normal_kl(m1, v1, m2, v2), atol=1e-5)
    assert_close(kd.diffusion.normal_kl(m1, v1, m1, v1), np.zeros_like(m1), atol=1e-6, what="KL(p || p)")


def test_discretized_likelihood_sums_to_one_over_bins():
    bins = (-1.0 + 2.0 * np.arange(256) / 255.0).astype("float32")[None, :]  # (1, 256): every 8-bit value
    means = np.array([[-0.7], [0.0], [0.95]], "float32")
    log_scales = np.array([[-3.0], [-1.0], [0.5]], "float32")
    log_probs = kd.diffusion.discretized_gaussian_log_likelihood(bins, means, log_scales)
    probs = np.exp(to_numpy(log_probs))  # (compared as probabilities: float32 tails round to the 1e-12 floor)
    assert_close(probs, np.exp(discretized_log_likelihood(bins, means, log_scales)), atol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
