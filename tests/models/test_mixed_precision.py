"""``mixed_bfloat16``: norms, modulation, timestep embedding, softmax and the output head stay float32, outputs
stay close to the float32 model, and a training step is finite."""

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import max_abs_diff, to_numpy
from tests.models.test_remat import TINY


@pytest.fixture
def mixed_policy():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    yield
    keras.config.set_dtype_policy(previous)


def random_weights(model, seed=2):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.1, w.shape).astype("float32") for w in model.get_weights()]


INPUTS = {
    "x": np.random.default_rng(3).normal(size=(4, 8, 8, 3)).astype("float32"),
    "t": np.array([1.0, 250.0, 500.0, 999.0], "float32"),
    "condition": np.array([0, 1, 2, 3], "int32"),
}


@pytest.mark.parametrize("name", list(TINY))
def test_mixed_bfloat16_forward_close_to_float32(name, mixed_policy):
    keras.config.set_dtype_policy("float32")
    reference = TINY[name]()
    weights = random_weights(reference)
    reference.set_weights(weights)
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = TINY[name]()
    model.set_weights(weights)
    assert model.get_layer("patch_embedding").compute_dtype == "bfloat16"
    assert model.get_layer("timestep_embedding").compute_dtype == "float32"
    out, expected = model(INPUTS), reference(INPUTS)
    assert keras.backend.standardize_dtype(out.dtype) == "float32"
    error, scale = max_abs_diff(out, expected), float(np.std(to_numpy(expected)))
    assert np.all(np.isfinite(to_numpy(out)))
    assert error < 0.1 * scale, f"{name}: bfloat16 output differs by {error:.3g} (output std {scale:.3g})"


def test_dit_sublayers_computing_in_float32(mixed_policy):
    model = TINY["DiT"]()
    block = model.get_layer("block_0")
    assert block.compute_dtype == "bfloat16" and block.mlp.compute_dtype == "bfloat16"
    float32_layers = [block.norm1, block.norm2, block.modulation, block.modulation.dense,
                      model.get_layer("final_layer"), model.get_layer("final_layer").linear]
    assert all(layer.compute_dtype == "float32" for layer in float32_layers)


def test_dot_product_attention_upcasts_half_precision():
    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(2, 5, 2, 4)).astype("float32") for _ in range(3))
    expected = kd.layers.dot_product_attention(q, k, v)
    half = kd.layers.dot_product_attention(*(keras.ops.cast(a, "bfloat16") for a in (q, k, v)))
    assert keras.backend.standardize_dtype(half.dtype) == "bfloat16"
    assert max_abs_diff(keras.ops.cast(half, "float32"), expected) < 0.05


def test_mixed_bfloat16_training_step_is_finite(mixed_policy):
    model = kd.tasks.DiffusionModel(TINY["DiT"](), kd.diffusion.GaussianDiffusion(), seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (8, 8, 8, 3)).astype("float32")
    history = model.fit(images, np.arange(8) % 4, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])
    assert all(w.dtype == "float32" for w in model.backbone.weights)  # variables stay float32
