"""Shared test helpers: numeric comparison, PyTorch peers, gradients, the tiny configs and the test contract
every backbone and layer goes through (``run_backbone_test``, ``run_layer_test``), and the shared fixtures' data
(quadrant images, tiny CLI runs).

Every test module imports from here (never from another test module) rather than writing its own variant, so
that a tolerance, a tiny config or a round-trip check means the same thing everywhere.
"""

import contextlib
import os

import keras
import numpy as np
import pytest

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


def _energy(output):
    """A scalar loss of any output structure: half the sum of squares of its (float32) tensors."""
    return sum(0.5 * keras.ops.sum(keras.ops.square(keras.ops.cast(o, "float32"))) for o in keras.tree.flatten(output))


def weight_gradients(layer, *args, **kwargs):
    """d _energy(layer(*args)) / d w for each of ``layer.trainable_variables``, as NumPy (zeros where unused).

    Inference mode (no dropout): the comparison of two models' gradients is then deterministic.
    """
    variables = layer.trainable_variables
    if not variables:
        return []
    if BACKEND == "jax":
        import jax

        frozen = [v.value for v in layer.non_trainable_variables]
        args = keras.tree.map_structure(keras.ops.convert_to_tensor, args)

        def loss(values):
            return _energy(layer.stateless_call(values, frozen, *args, **kwargs)[0])

        grads = jax.jit(jax.grad(loss))([v.value for v in variables])
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = _energy(layer(*args, **kwargs))
        grads = tape.gradient(loss, variables)
    else:
        import torch

        grads = torch.autograd.grad(_energy(layer(*args, **kwargs)), [v.value for v in variables], allow_unused=True)
    return [np.zeros(v.shape, "float32") if g is None else to_numpy(g) for v, g in zip(variables, grads)]


def randomise(target, seed=0, stddev=0.1):
    """Give every weight of a layer or model N(0, stddev) values; returns ``target``.

    A fresh DiT-style model predicts exactly 0 (adaLN-Zero: zero modulation and output layers), which hides the
    blocks, the condition and their gradients from any test; random weights everywhere show them.
    """
    rng = np.random.default_rng(seed)
    target.set_weights([rng.normal(0, stddev, w.shape).astype(w.dtype) for w in target.get_weights()])
    return target


@contextlib.contextmanager
def dtype_policy(name):
    """Build (and call) layers under the global dtype policy ``name``, e.g. ``"mixed_bfloat16"``."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


# ---------------------------------------------------------------------------------------------------------------
# Tiny backbones: the one small config of each backbone every model test starts from (override what a test needs)
# ---------------------------------------------------------------------------------------------------------------

TINY = {
    "DiT": dict(input_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=2, num_heads=2, num_classes=4),
    "UViT": dict(input_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=3, num_heads=2, num_classes=4),
    "ReiMei": dict(input_size=8, patch_size=2, in_channels=3, hidden_size=16, num_heads=2, num_mixer_layers=1,
                   num_double_layers=2, num_single_layers=2, mlp_ratio=(1.0, 4.0), num_experts=2,
                   capacity_factor=1.0, num_classes=4),
}
NUM_STATES = 5  # of the tiny CategoricalBackbone


def tiny_backbone(name, **overrides):
    """``kd.models.<name>`` ("DiT", "UViT", "ReiMei") in its tiny config, with ``overrides``."""
    import keras_dit as kd

    return getattr(kd.models, name)(**{**TINY[name], **overrides})


def tiny_categorical(name="DiT", **options):
    """A CategoricalBackbone over ``NUM_STATES`` states and 2 channels, around a tiny ``name`` backbone."""
    import keras_dit as kd

    return kd.models.CategoricalBackbone(tiny_backbone(name, in_channels=8), NUM_STATES, in_channels=2, **options)


def tiny_inputs(batch=2, size=8, channels=3, num_classes=4, seed=1):
    """Backbone inputs: standard normal ``x``, timesteps spread over [1, 999] and labels ``0, 1, ...``."""
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((batch, size, size, channels)).astype("float32"),
            "t": np.linspace(1, 999, batch).astype("float32"),
            "condition": (np.arange(batch) % num_classes).astype("int32")}


# ---------------------------------------------------------------------------------------------------------------
# The test contract (after keras-hub's run_backbone_test / run_layer_test / run_precision_test)
# ---------------------------------------------------------------------------------------------------------------


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


def run_precision_test(model, inputs, reference, tolerance=0.1):
    """``model`` (built under ``mixed_bfloat16``) computes in bfloat16 somewhere, keeps float32 variables and
    returns finite float32 outputs within ``tolerance`` output standard deviations of the float32 ``reference``."""
    assert any(layer.compute_dtype == "bfloat16" for layer in model.layers), "nothing computes in bfloat16"
    assert all(w.dtype == "float32" for w in model.weights), "mixed precision must keep float32 variables"
    with dtype_policy("mixed_bfloat16"):
        output = model(inputs)
    assert keras.backend.standardize_dtype(output.dtype) == "float32", "the prediction must be float32"
    assert np.all(np.isfinite(to_numpy(output))), "non-finite outputs under mixed_bfloat16"
    error, scale = max_abs_diff(output, reference), float(np.std(to_numpy(reference)))
    assert error < tolerance * scale, f"bfloat16 output differs by {error:.3g} (float32 output std {scale:.3g})"


def run_backbone_test(cls, init_kwargs, inputs, expected_output_shape, tmp_path, atol=1e-5, precision_tolerance=0.1):
    """The contract every backbone passes, on one tiny config; returns the model loaded from its ``.keras`` file.

    - the output has ``expected_output_shape`` and is finite (with random weights, so that nothing is zero);
    - ``get_config``/``from_config`` and a ``.keras`` round trip give the same config and outputs;
    - under ``mixed_bfloat16`` the same weights give finite float32 outputs close to the float32 ones;
    - a config with a ``remat`` option gives the same outputs and weight gradients with ``remat=True``;
    - a conditional backbone runs its batch of null conditions (the CFG branch), which changes the output.
    """
    model = randomise(cls(**init_kwargs))
    output = model(inputs)
    assert tuple(output.shape) == tuple(expected_output_shape), f"output shape {tuple(output.shape)}"
    assert np.all(np.isfinite(to_numpy(output))), "non-finite outputs"
    loaded = run_serialization_test(model, inputs, tmp_path, atol=atol)

    weights = model.get_weights()
    with dtype_policy("mixed_bfloat16"):  # built as a user would, from arguments (a config pins sublayer dtypes)
        half = cls(**init_kwargs)
    half.set_weights(weights)
    run_precision_test(half, inputs, output, precision_tolerance)

    if "remat" in model.get_config():
        remat = cls(**{**init_kwargs, "remat": True})
        remat.set_weights(weights)
        assert_close(remat(inputs), output, atol=atol, what="outputs with remat=True")
        for w, a, b in zip(model.trainable_variables, weight_gradients(remat, inputs), weight_gradients(model, inputs)):
            assert_close(a, b, atol=atol, rtol=1e-4, what=f"gradient of {w.path} with remat=True")

    batch = len(inputs["x"])
    null = model.null_conditions(batch)
    if null is not None:
        unconditional = model({**inputs, "condition": null})
        assert tuple(unconditional.shape) == tuple(expected_output_shape)
        assert np.all(np.isfinite(to_numpy(unconditional))), "non-finite outputs for the null condition"
        assert max_abs_diff(unconditional, output) > 1e-6, "the null condition gives the conditional output"
    return loaded


def run_layer_test(layer_cls, init_kwargs, input_data, expected_output_shape, tmp_path,
                   expected_num_trainable_weights=None, atol=1e-5):
    """The contract every layer passes; returns the built layer, with random weights.

    ``input_data`` is one array or a tuple of arrays (the positional call arguments, batch first);
    ``expected_output_shape`` a shape, or a tuple of shapes for a layer with several outputs. Checks: the layer
    builds inside a functional model; the eager call has the expected shapes and finite values; the number of
    trainable weights; ``from_config(get_config())`` gives an equal config and, with the same weights, the same
    outputs; the functional model survives a ``.keras`` round trip; the weight gradients are finite, not all zero.
    """
    args = input_data if isinstance(input_data, tuple) else (input_data,)
    layer = layer_cls(**init_kwargs)
    symbolic = [keras.Input(shape=a.shape[1:], dtype=str(a.dtype)) for a in args]
    model = keras.Model(symbolic if len(args) > 1 else symbolic[0], layer(*symbolic))
    assert layer.built
    randomise(layer)
    output = layer(*args)
    outputs = keras.tree.flatten(output)
    shapes = [tuple(o.shape) for o in outputs]
    expected = list(expected_output_shape) if isinstance(expected_output_shape[0], tuple) else [expected_output_shape]
    assert shapes == [tuple(s) for s in expected], f"output shapes {shapes}, expected {expected}"
    assert all(np.all(np.isfinite(to_numpy(o))) for o in outputs), "non-finite outputs"
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, [w.path for w in layer.weights]

    config = layer.get_config()
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config, "from_config(get_config()) changed the config"
    clone(*args)
    clone.set_weights(layer.get_weights())
    for a, b in zip(keras.tree.flatten(clone(*args)), outputs):
        assert_close(a, b, atol=atol, what="outputs of from_config(get_config())")

    path = os.path.join(str(tmp_path), "layer.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(keras.tree.flatten(loaded(list(args) if len(args) > 1 else args[0])), outputs):
        assert_close(a, b, atol=atol, what="outputs after .keras round trip")

    grads = weight_gradients(layer, *args)
    assert all(np.all(np.isfinite(g)) for g in grads), "non-finite weight gradients"
    assert not grads or any(np.any(g != 0) for g in grads), "no weight receives a gradient"
    return layer


# ---------------------------------------------------------------------------------------------------------------
# Quadrant images: a 4-class data set whose class a sample shows can be read from its pixels
# ---------------------------------------------------------------------------------------------------------------

QUADRANT_SIZE, QUADRANT_CLASSES = 8, 4


def quadrant_images(labels, rng):
    """Class k: the k-th half (top, bottom, left, right) bright, the rest dark, plus noise; in [-1, 1]."""
    size = QUADRANT_SIZE
    images = np.full((len(labels), size, size, 1), -0.8, "float32")
    h = size // 2
    halves = [np.s_[:h, :], np.s_[h:, :], np.s_[:, :h], np.s_[:, h:]]
    for image, label in zip(images, labels):
        image[halves[label]] = 0.8
    return np.clip(images + rng.normal(0, 0.1, images.shape), -1, 1).astype("float32")


def predicted_class(images_uint8):
    """Which half is brightest: the class a sample shows, from its pixels."""
    x = images_uint8[..., 0].astype("float32")
    h = QUADRANT_SIZE // 2
    scores = np.stack(
        [x[:, :h].mean((1, 2)) - x[:, h:].mean((1, 2)), x[:, h:].mean((1, 2)) - x[:, :h].mean((1, 2)),
         x[:, :, :h].mean((1, 2)) - x[:, :, h:].mean((1, 2)), x[:, :, h:].mean((1, 2)) - x[:, :, :h].mean((1, 2))],
        axis=1,
    )
    return scores.argmax(1)


def quadrant_data(n=512, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, QUADRANT_CLASSES, n).astype("int32")
    return quadrant_images(labels, rng), labels


def quadrant_backbone(**overrides):
    """The tiny DiT, on the quadrant images (1 channel, 4 classes), wide enough to learn them."""
    return tiny_backbone("DiT", **{"input_size": QUADRANT_SIZE, "in_channels": 1, "num_classes": QUADRANT_CLASSES,
                                   "hidden_size": 64, "num_heads": 4, "seed": 1, **overrides})


# ---------------------------------------------------------------------------------------------------------------
# The command line: tiny runs and one-line errors
# ---------------------------------------------------------------------------------------------------------------

TINY_CLI = ["--set", "data.limit=64", "--set", "data.image_size=8", "--set", "data.batch_size=32",
            "--set", "model.patch_size=4", "--set", "model.hidden_size=32", "--set", "model.depth=1",
            "--set", "model.num_heads=2", "--set", "train.sample_every=1", "--set", "train.verbose=0",
            "--set", "sample.per_class=1", "--set", "sample.num_steps=2", "--set", "train.checkpoint_every=1"]
LATENT_SIZE = 8  # of the tiny latent pipeline: the built-in synthetic set, 8 x 8 grayscale; latents 2 x 2 x 4


def fresh_jax_env():
    """The environment of a fresh JAX process on this checkout, without ``XLA_FLAGS``: it picks its own devices
    (``distribution.split_cpu``)."""
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    return dict(env, KERAS_BACKEND="jax", PYTHONPATH=os.getcwd())


def tiny_cli(out, *extra):
    """``-c digits`` made tiny (``TINY_CLI``), writing to ``out``."""
    return ["-c", "digits", "--set", f"output_dir={out}", *TINY_CLI, *extra]


def latent_argv(out, *extra):
    """The ``latent`` preset made tiny, every file of the pipeline in ``out``."""
    sets = {
        "output_dir": out, "data.source": "synthetic", "data.image_size": LATENT_SIZE, "data.channels": 1,
        "data.batch_size": 32, "data.latent_cache": f"{out}/latents.npz", "vae.preset": "kl-f4-tiny",
        "vae.checkpoint": f"{out}/vae.keras", "vae.cache": f"{out}/latents.npz", "vae.epochs": 1,
        "vae.learning_rate": 1e-3, "model.autoencoder": f"{out}/vae.keras", "model.patch_size": 1,
        "model.hidden_size": 32, "model.depth": 1, "model.num_heads": 2, "train.epochs": 1, "train.verbose": 0,
        "train.tensorboard": False, "sample.per_class": 2, "sample.num_steps": 2,
    }
    return ["-c", "latent", *[arg for key, value in sets.items() for arg in ("--set", f"{key}={value}")], *extra]


def run_error(capsys, argv):
    """Run the CLI expecting a user error: returns the stderr line after checking exit status 2."""
    from keras_dit.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("keras-dit: error: "), err
    return err[0]
