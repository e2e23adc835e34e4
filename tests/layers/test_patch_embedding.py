"""patchify / unpatchify and PatchEmbedding: the (row, column, channel) patch order, the exact round trip, the
layer contract, and the equivalence with a stride-p convolution."""

import keras
import numpy as np

from keras_dit.layers.patch_embedding import PatchEmbedding, patchify, unpatchify
from tests.helpers import assert_close, randomise, run_layer_test, to_numpy

X = np.random.default_rng(0).standard_normal((2, 8, 6, 3)).astype("float32")


def test_patch_order_and_round_trip():
    tokens = to_numpy(patchify(X, 2))
    assert tokens.shape == (2, 4 * 3, 2 * 2 * 3)
    for row, col in [(0, 0), (1, 2), (3, 1)]:  # token r * 3 + c is the patch at (r, c), flattened row-major
        patch = X[:, 2 * row:2 * row + 2, 2 * col:2 * col + 2].reshape(2, -1)
        np.testing.assert_array_equal(tokens[:, row * 3 + col], patch)
    np.testing.assert_array_equal(to_numpy(unpatchify(tokens, (4, 3), 2, 3)), X)


def test_layer_contract(tmp_path):
    run_layer_test(PatchEmbedding, {"patch_size": 2, "hidden_size": 16}, X, (2, 12, 16), tmp_path,
                   expected_num_trainable_weights=2)


def test_equals_a_stride_p_convolution():
    layer = PatchEmbedding(2, 16)
    layer.build(X.shape)
    randomise(layer, seed=1)
    kernel, bias = (to_numpy(w) for w in layer.projection.weights)
    conv = keras.layers.Conv2D(16, 2, strides=2)
    conv.build(X.shape)
    conv.set_weights([kernel.reshape(2, 2, 3, 16), bias])  # (p * p * C, D) in (row, column, channel) order
    expected = to_numpy(conv(X)).reshape(2, 12, 16)
    assert_close(layer(X), expected, atol=1e-5, what="patch embedding vs Conv2D")
