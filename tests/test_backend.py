"""The backend module: value inspection, compiled inference and the residual barrier."""

import numpy as np
import pytest

import keras
import keras_dit as kd
from tests.helpers import BACKEND, assert_close, to_numpy


def test_concrete_value_is_numpy_when_eager():
    value = kd.backend.concrete_value(keras.ops.convert_to_tensor([1.0, 2.0]))
    assert isinstance(value, np.ndarray) and value.tolist() == [1.0, 2.0]
    assert kd.backend.concrete_value(keras.KerasTensor((2,))) is None


def test_materialized_is_an_exact_identity():
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype("float32")
    x[0, 0, 0] = 0.0  # the barrier's divisor is built from this element; it must still be exactly 1
    np.testing.assert_array_equal(to_numpy(kd.backend.materialized(keras.ops.convert_to_tensor(x))), x)


@pytest.mark.skipif(BACKEND != "jax", reason="the barrier only changes the program on JAX")
def test_materialized_keeps_gradients_and_the_division_under_jit():
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 6)).astype("float32"))
    loss = lambda fn: lambda v: jnp.sum(jnp.sin(fn(v)) ** 2)  # noqa: E731
    grad = jax.jit(jax.grad(loss(kd.backend.materialized)))
    assert_close(grad(x), jax.grad(loss(lambda v: v))(x), atol=0.0, what="gradient through the barrier")
    # The division is what stops XLA fusing (and recomputing) the input into every consumer: it must survive.
    assert "divide" in grad.lower(x).compile().as_text()


def test_every_transformer_block_calls_the_barrier(monkeypatch):
    from keras_dit.layers import dit_block, mmdit_block, transformer_block

    calls = []
    for module in (dit_block, transformer_block, mmdit_block):
        monkeypatch.setattr(module, "materialized", lambda x, m=module: calls.append(m.__name__) or x)
    tokens, c = np.zeros((1, 4, 8), "float32"), np.zeros((1, 8), "float32")
    dit_block.DiTBlock(8, 2)(tokens, c)
    transformer_block.TransformerBlock(8, 2)(tokens)
    mmdit_block.MMDiTBlock(8, 2, mlp_hidden_size=16)(tokens, tokens, c)
    assert [name.rsplit(".", 1)[-1] for name in dict.fromkeys(calls)] == ["dit_block", "transformer_block", "mmdit_block"]
