"""Position embeddings: the fixed 2D sin-cos table against MAE's formula written out per token, distinct tokens,
width checks, and the layer contract of SinCosPositionEmbedding and LearnedPositionEmbedding."""

import numpy as np
import pytest

from keras_dit.layers.learned_position_embedding import LearnedPositionEmbedding
from keras_dit.layers.position_embedding import SinCosPositionEmbedding, sincos_1d, sincos_2d
from tests.helpers import assert_close, run_layer_test, to_numpy

TOKENS = np.random.default_rng(0).standard_normal((2, 6, 8)).astype("float32")  # a 2 x 3 grid, width 8


def test_sincos_2d_is_the_mae_table():
    dim, rows, cols = 8, 2, 3
    table = sincos_2d(dim, rows, cols)
    quarter = dim // 4
    for row in range(rows):
        for col in range(cols):
            token = table[row * cols + col]
            for i in range(quarter):  # column in the first half, row in the second; sines before cosines
                w = 1.0 / 10000 ** (i / quarter)
                expected = [np.sin(col * w), np.cos(col * w), np.sin(row * w), np.cos(row * w)]
                got = [token[i], token[quarter + i], token[2 * quarter + i], token[3 * quarter + i]]
                np.testing.assert_allclose(got, expected, atol=1e-6)
    assert len({tuple(np.round(t, 5)) for t in table}) == rows * cols, "two tokens share a position embedding"


def test_width_checks():
    with pytest.raises(ValueError, match="width=3 is not divisible by 2"):
        sincos_1d(3, np.arange(2))
    with pytest.raises(ValueError, match="width=6 is not divisible by 4"):
        sincos_2d(6, 2, 2)


def test_sincos_layer_contract_adds_the_table(tmp_path):
    layer = run_layer_test(SinCosPositionEmbedding, {"grid_size": (2, 3)}, TOKENS, TOKENS.shape, tmp_path,
                           expected_num_trainable_weights=0)
    assert_close(to_numpy(layer(TOKENS)) - TOKENS, np.broadcast_to(sincos_2d(8, 2, 3), TOKENS.shape), atol=1e-6)


def test_learned_layer_contract(tmp_path):
    layer = run_layer_test(LearnedPositionEmbedding, {}, TOKENS, TOKENS.shape, tmp_path,
                           expected_num_trainable_weights=1)
    table = to_numpy(layer.embedding)
    assert table.shape == (6, 8)
    assert_close(to_numpy(layer(TOKENS)) - TOKENS, np.broadcast_to(table, TOKENS.shape), atol=1e-6)
