"""Timestep embedding: the sinusoidal features against their NumPy formula (reference DiT and diffusers' shift),
the layer contract, float32 under mixed precision, and the too-small width check."""

import keras
import numpy as np
import pytest

from keras_dit.layers.timestep_embedding import TimestepEmbedding, sinusoidal_embedding, timestep_frequencies
from tests.helpers import assert_close, dtype_policy, run_layer_test

T = np.array([0.0, 1.0, 37.5, 999.0], "float32")


def reference_features(t, dim, shift):
    """[cos(t f_i), sin(t f_i)] with f_i = 10000^(-i / (dim / 2 - shift)), i < dim / 2; a zero column if dim is odd."""
    half = dim // 2
    f = 10000.0 ** (-np.arange(half) / (half - shift))
    args = t.astype(np.float64)[:, None] * f[None]
    features = np.concatenate([np.cos(args), np.sin(args)], axis=1)
    return np.pad(features, [(0, 0), (0, dim % 2)])


@pytest.mark.parametrize("dim, shift", [(16, 0), (16, 1), (7, 0)])
def test_features_match_the_formula(dim, shift):
    # float32 phases up to t f = 999: the rounding of f (relative 6e-8) moves them by up to 6e-5
    assert_close(sinusoidal_embedding(T, dim, frequency_shift=shift), reference_features(T, dim, shift), atol=2e-4)


def test_layer_contract(tmp_path):
    run_layer_test(TimestepEmbedding, {"hidden_size": 16, "frequency_dim": 32}, T, (4, 16), tmp_path,
                   expected_num_trainable_weights=4)


def test_computes_in_float32_under_mixed_precision():
    with dtype_policy("mixed_bfloat16"):
        layer = TimestepEmbedding(16, frequency_dim=32)
        out = layer(T)
    assert layer.compute_dtype == "float32" and keras.backend.standardize_dtype(out.dtype) == "float32"


def test_frequency_dim_too_small_for_the_shift():
    assert timestep_frequencies(2).tolist() == [1.0]
    with pytest.raises(ValueError, match="frequency_dim=2 is too small for frequency_shift=1"):
        timestep_frequencies(2, frequency_shift=1)
