"""Shared test helpers: numeric comparison, serialization round trips, PyTorch peers.

Every test module imports from here rather than writing its own variant, so that a tolerance or a round-trip
check means the same thing everywhere.
"""

import os

import keras
import numpy as np

BACKEND = keras.backend.backend()


def to_numpy(x):
    """A tensor of any backend (or a torch tensor, or a nested dict/list) as NumPy."""
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_numpy(v) for v in x)
    if hasattr(x, "detach"):  # a torch tensor from a peer model
        return x.detach().cpu().numpy()
    return keras.ops.convert_to_numpy(x)


def max_abs_diff(actual, expected):
    return float(np.max(np.abs(to_numpy(actual).astype(np.float64) - to_numpy(expected).astype(np.float64))))


def assert_close(actual, expected, atol=1e-5, rtol=0.0, what="values"):
    """Assert two arrays match elementwise; the message gives the max abs difference and the shapes."""
    actual, expected = to_numpy(actual), to_numpy(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != expected {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{what}: non-finite values in the result"
    np.testing.assert_allclose(
        actual, expected, atol=atol, rtol=rtol,
        err_msg=f"{what}: max abs diff {max_abs_diff(actual, expected):.3g} > atol {atol}",
    )


def run_serialization_test(model, inputs, tmp_path, atol=1e-6, call=None):
    """Check ``get_config``/``from_config`` and a ``.keras`` save/load round trip.

    The config round trip must give an equal config; the saved file must load (without custom_objects)
    into a model whose outputs equal the original's on ``inputs``. ``call(model, inputs)`` overrides how the
    model is called (default: ``model(inputs, training=False)``). Returns the loaded model.
    """
    call = call or (lambda m, x: m(x, training=False))
    config = model.get_config()
    clone = model.__class__.from_config(config)
    assert clone.get_config() == config, "from_config(get_config()) changed the config"

    path = os.path.join(str(tmp_path), "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model), f"loaded a {type(loaded).__name__}, saved a {type(model).__name__}"
    assert_close(call(loaded, inputs), call(model, inputs), atol=atol, what="outputs after .keras round trip")
    return loaded


def torch_no_grad():
    """Context for running a PyTorch peer (diffusers) in float32 inference mode."""
    import torch

    torch.manual_seed(0)
    return torch.no_grad()


def to_torch(x):
    import torch

    return torch.from_numpy(np.ascontiguousarray(to_numpy(x)))


def nhwc_to_nchw(x):
    return np.transpose(to_numpy(x), (0, 3, 1, 2))


def nchw_to_nhwc(x):
    return np.transpose(to_numpy(x), (0, 2, 3, 1))


def gradient(fn, x):
    """d sum(fn(x)) / dx with the backend's autodiff."""
    if BACKEND == "jax":
        import jax

        return jax.grad(lambda v: fn(v).sum())(x)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(fn(x))
        return tape.gradient(y, x)
    import torch

    x = torch.tensor(x, requires_grad=True)
    fn(x).sum().backward()
    return x.grad
