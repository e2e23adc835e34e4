"""adaLN modulation: ``modulate`` and ``gated_residual`` against their formulas (and dtypes), AdaLNModulation's
layer contract, zero start (adaLN-Zero) and its SiLU -> Dense -> split formula."""

import keras
import numpy as np

from keras_dit.layers.modulation import AdaLNModulation, gated_residual, modulate
from tests.helpers import assert_close, randomise, run_layer_test, to_numpy

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 3, 4)).astype("float32")
SHIFT, SCALE, GATE, C = (RNG.standard_normal((2, 4)).astype("float32") for _ in range(4))


def test_modulate_and_gated_residual_formulas():
    assert_close(modulate(X, SHIFT, SCALE), X * (1 + SCALE[:, None]) + SHIFT[:, None], atol=1e-6)
    branch = RNG.standard_normal(X.shape).astype("float32")
    assert_close(gated_residual(X, GATE, branch), X + GATE[:, None] * branch, atol=1e-6)
    half = gated_residual(keras.ops.cast(X, "bfloat16"), GATE, keras.ops.cast(branch, "bfloat16"))
    assert keras.backend.standardize_dtype(half.dtype) == "bfloat16", "the residual keeps the stream's dtype"


def test_layer_contract(tmp_path):
    run_layer_test(AdaLNModulation, {"hidden_size": 4, "num_chunks": 3}, C, ((2, 4),) * 3, tmp_path,
                   expected_num_trainable_weights=2)


def test_zero_start_and_formula():
    layer = AdaLNModulation(4, 3)
    assert all(np.all(to_numpy(chunk) == 0.0) for chunk in layer(C)), "adaLN-Zero: every chunk starts at 0"
    randomise(layer, seed=1)
    kernel, bias = (to_numpy(w).astype(np.float64) for w in layer.weights)
    silu = C / (1 + np.exp(-C.astype(np.float64)))
    expected = np.split(silu @ kernel + bias, 3, axis=-1)
    for chunk, want in zip(layer(C), expected):
        assert_close(chunk, want, atol=1e-5, what="shift / scale / gate")
