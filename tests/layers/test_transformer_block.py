"""TransformerBlock (the layer contract, with and without a long skip) and SelfAttention's key mask (the tag
encoder's padding); SelfAttention's default unchanged."""

import numpy as np
import pytest

from keras_dit.layers.attention import SelfAttention
from keras_dit.layers.transformer_block import TransformerBlock
from tests.helpers import assert_close, max_abs_diff, run_layer_test

X = np.random.default_rng(0).standard_normal((2, 5, 8)).astype("float32")


@pytest.mark.parametrize("skip, inputs, num_weights", [(False, X, 11), (True, (X, X[:, ::-1]), 13)])
def test_layer_contract(skip, inputs, num_weights, tmp_path):
    # 2 affine LayerNorms (4), attention without a q/k/v bias (3), MLP (4); the long skip's projection (2)
    run_layer_test(TransformerBlock, {"hidden_size": 8, "num_heads": 2, "skip": skip}, inputs, X.shape, tmp_path,
                   expected_num_trainable_weights=num_weights)


def test_self_attention_mask_hides_keys_and_all_true_changes_nothing():
    attention = SelfAttention(8, 2)
    plain = attention(X)
    assert_close(attention(X, key_mask=np.ones((2, 5), bool)), plain, atol=1e-6, what="all-true mask")
    mask = np.array([[True, True, True, False, False]] * 2)
    changed = X.copy()
    changed[:, 3:] += 10.0
    assert_close(attention(changed, key_mask=mask)[:, :3], attention(X, key_mask=mask)[:, :3], atol=1e-5,
                 what="outputs of kept tokens when masked tokens change")
    assert [w.path.split("/")[-2:] for w in attention.weights] == [
        ["qkv", "kernel"], ["qkv", "bias"], ["proj", "kernel"], ["proj", "bias"]
    ], "SelfAttention's weights layout changed"


def test_skip_block_uses_its_skip_input():
    block = TransformerBlock(8, 2, skip=True)
    a = block(X, X)
    b = block(X, X[:, ::-1] * 2.0)
    assert tuple(a.shape) == X.shape and max_abs_diff(a, b) > 1e-4
    with pytest.raises(ValueError, match="skip=True"):
        block(X)
