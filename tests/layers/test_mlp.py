"""The feed-forward blocks: the layer contract of Mlp and SwiGLU, their formulas in NumPy, and ``feed_forward``'s
sizing (SwiGLU at 2/3 width: the GELU MLP's parameter count) and choice check."""

import numpy as np
import pytest

from keras_dit.layers.mlp import Mlp, SwiGLU, feed_forward
from tests.helpers import assert_close, run_layer_test, to_numpy

X = np.random.default_rng(0).standard_normal((2, 3, 8)).astype("float32")


def gelu_tanh(z):
    return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))


@pytest.mark.parametrize("cls", [Mlp, SwiGLU])
def test_layer_contract_and_formula(cls, tmp_path):
    layer = run_layer_test(cls, {"hidden_size": 8, "mlp_hidden_size": 12}, X, X.shape, tmp_path,
                           expected_num_trainable_weights=4)
    w1, b1, w2, b2 = (to_numpy(w).astype(np.float64) for w in layer.weights)
    hidden = X @ w1 + b1
    if cls is SwiGLU:
        gate, value = np.split(hidden, 2, axis=-1)
        hidden = gate / (1 + np.exp(-gate)) * value
    else:
        hidden = gelu_tanh(hidden)
    assert_close(layer(X), hidden @ w2 + b2, atol=1e-4, what=f"{cls.__name__} vs NumPy")


def test_feed_forward_sizes_and_choices():
    gelu, swiglu = feed_forward("gelu", 24, 4.0, "mlp"), feed_forward("swiglu", 24, 4.0, "mlp")
    gelu.build((None, 24))
    swiglu.build((None, 24))
    assert isinstance(swiglu, SwiGLU) and gelu.mlp_hidden_size == 96 and swiglu.mlp_hidden_size == 64
    assert abs(swiglu.count_params() - gelu.count_params()) < 0.02 * gelu.count_params()
    with pytest.raises(ValueError, match=r"Unknown mlp_type 'relu'; expected one of \['gelu', 'swiglu'\]"):
        feed_forward("relu", 24, 4.0, "mlp")
