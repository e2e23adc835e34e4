"""SelfAttention and dot_product_attention: the layer contract, the attention formula in NumPy, half-precision
upcasting, and the head-count check."""

import keras
import numpy as np
import pytest

import keras_dit as kd
from keras_dit.layers.attention import SelfAttention
from tests.helpers import assert_close, max_abs_diff, randomise, run_layer_test, to_numpy

X = np.random.default_rng(0).standard_normal((2, 5, 16)).astype("float32")


@pytest.mark.parametrize("options, num_weights", [({}, 4), ({"qk_norm": True, "rope_grid": (2, 2)}, 6)])
def test_layer_contract(options, num_weights, tmp_path):
    run_layer_test(SelfAttention, {"hidden_size": 16, "num_heads": 2, **options}, X, X.shape, tmp_path,
                   expected_num_trainable_weights=num_weights)


def softmax(z):
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def test_output_is_multi_head_softmax_attention():
    layer = SelfAttention(16, 2)
    layer.build(X.shape)
    randomise(layer, seed=1, stddev=0.3)
    w_qkv, b_qkv, w_proj, b_proj = (to_numpy(w).astype(np.float64) for w in layer.weights)
    q, k, v = np.split(X @ w_qkv + b_qkv, 3, axis=-1)  # (B, T, D) each; head h owns channels [8 h, 8 h + 8)
    heads = []
    for h in range(2):
        qh, kh, vh = (a[..., 8 * h:8 * h + 8] for a in (q, k, v))
        heads.append(softmax(qh @ kh.transpose(0, 2, 1) / np.sqrt(8)) @ vh)
    expected = np.concatenate(heads, axis=-1) @ w_proj + b_proj
    assert_close(layer(X), expected, atol=1e-4, what="attention vs NumPy")


def test_dot_product_attention_upcasts_half_precision():
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(2, 5, 2, 4)).astype("float32") for _ in range(3))
    expected = kd.layers.dot_product_attention(q, k, v)
    half = kd.layers.dot_product_attention(*(keras.ops.cast(a, "bfloat16") for a in (q, k, v)))
    assert keras.backend.standardize_dtype(half.dtype) == "bfloat16"
    assert max_abs_diff(keras.ops.cast(half, "float32"), expected) < 0.05


def test_num_heads_must_divide_the_width():
    with pytest.raises(ValueError, match="hidden_size=16 is not divisible by num_heads=3"):
        SelfAttention(16, 3)
