"""DiTBlock and FinalLayer: the layer contract, adaLN-Zero (identity / zero at init), what computes in float32
under mixed precision, and the norm choice."""

import keras
import numpy as np
import pytest

from keras_dit.layers.dit_block import DiTBlock, FinalLayer, token_norm
from tests.helpers import assert_close, dtype_policy, run_layer_test, to_numpy

RNG = np.random.default_rng(0)
X = RNG.standard_normal((2, 4, 16)).astype("float32")
C = RNG.standard_normal((2, 16)).astype("float32")


def test_block_contract(tmp_path):
    # attention 4 (qkv, proj), MLP 4 (fc1, fc2), modulation 2; the LayerNorms have no affine (adaLN modulates them)
    run_layer_test(DiTBlock, {"hidden_size": 16, "num_heads": 2, "mlp_ratio": 2.0}, (X, C), X.shape, tmp_path,
                   expected_num_trainable_weights=10)


def test_final_layer_contract(tmp_path):
    run_layer_test(FinalLayer, {"hidden_size": 16, "patch_size": 2, "out_channels": 3}, (X, C), (2, 4, 12), tmp_path,
                   expected_num_trainable_weights=4)


def test_adaln_zero_block_is_the_identity_and_final_layer_zero_at_init():
    assert_close(DiTBlock(16, 2)(X, C), X, atol=0.0, what="fresh block")
    assert np.all(to_numpy(FinalLayer(16, 2, 3)(X, C)) == 0.0)


def test_mixed_precision_keeps_norms_modulation_and_head_in_float32():
    with dtype_policy("mixed_bfloat16"):
        block, final = DiTBlock(16, 2), FinalLayer(16, 2, 3)
        out, prediction = block(X, C), final(X, C)
    assert block.compute_dtype == "bfloat16" and block.mlp.compute_dtype == "bfloat16"
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    float32_layers = [block.norm1, block.norm2, block.modulation, block.modulation.dense, final, final.linear]
    assert all(layer.compute_dtype == "float32" for layer in float32_layers)
    assert keras.backend.standardize_dtype(prediction.dtype) == "float32"


def test_token_norm_choices():
    assert isinstance(token_norm("rms", 1e-6, "n"), keras.layers.RMSNormalization)
    plain = token_norm("layer", 1e-6, "n")
    assert isinstance(plain, keras.layers.LayerNormalization) and not plain.center and not plain.scale
    assert token_norm("layer", 1e-6, "n", affine=True).scale
    with pytest.raises(ValueError, match=r"Unknown norm_type 'batch'; expected one of \['layer', 'rms'\]"):
        token_norm("batch", 1e-6, "n")
