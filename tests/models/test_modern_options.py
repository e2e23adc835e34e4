"""The modern DiT recipe as options of DiT and U-ViT (RMSNorm, SwiGLU, QK-norm, 2D RoPE): off by default, each
one changing the model, shapes, ``.keras`` round trips, gradients and ``fit``."""

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import assert_close, gradient, max_abs_diff, randomise, run_serialization_test, tiny_backbone
from tests.helpers import to_numpy

OPTIONS = {"norm_type": "rms", "mlp_type": "swiglu", "qk_norm": True, "rope": True}
OFF = {"norm_type": "layer", "mlp_type": "gelu", "qk_norm": False, "rope": False}
NAMES = {"dit": "DiT", "uvit": "UViT"}


def tiny(kind, **options):
    return tiny_backbone(NAMES[kind], in_channels=1, depth=3, **options)


def inputs(batch=2):
    rng = np.random.default_rng(1)
    return {"x": rng.standard_normal((batch, 8, 8, 1)).astype("float32"),
            "t": np.linspace(10, 990, batch).astype("float32"), "condition": np.arange(batch, dtype="int32") % 4}


def layout(model):
    return [(w.path, tuple(w.shape)) for w in model.weights]


@pytest.mark.parametrize("kind", ["dit", "uvit"])
def test_defaults_are_the_papers_model(kind):
    """Every option off by default: the same weights (names, shapes) and outputs as with the options spelt off,
    so presets, parameter counts and converters are unchanged (the converter tests compare those outputs with
    diffusers' and the reference DiT's)."""
    default, off = tiny(kind), tiny(kind, **OFF)
    assert layout(default) == layout(off)
    randomise(default, stddev=0.2)
    off.set_weights(default.get_weights())
    assert_close(off(inputs()), default(inputs()), atol=0.0, what="default vs options off")
    assert all(default.get_config()[key] == value for key, value in OFF.items())
    assert not any("q_norm" in path or "rms" in path for path, _ in layout(default))


@pytest.mark.parametrize("kind", ["dit", "uvit"])
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_each_option_changes_the_model(kind, option):
    base = randomise(tiny(kind), stddev=0.2)
    model = tiny(kind, **{option: OPTIONS[option]})
    assert model(inputs()).shape == (2, 8, 8, 1)
    if layout(model) == layout(base):  # RoPE adds no weights: same weights, other outputs
        model.set_weights(base.get_weights())
    else:
        randomise(model, stddev=0.2)
    assert max_abs_diff(model(inputs()), base(inputs())) > 1e-3, f"{option} had no effect"


def test_swiglu_keeps_the_parameter_count_and_rms_norm_has_a_scale():
    base, swiglu = tiny("dit"), tiny("dit", mlp_type="swiglu")
    assert abs(swiglu.count_params() - base.count_params()) < 0.02 * base.count_params()
    block = tiny("dit", norm_type="rms").get_layer("block_0")
    assert isinstance(block.norm1, keras.layers.RMSNormalization) and block.norm1.dtype == "float32"


def test_rope_rotates_only_the_patch_tokens_of_uvit():
    """U-ViT's time and condition tokens lead the sequence: RoPE leaves them (grid position-free) alone."""
    attention = kd.layers.SelfAttention(16, 2, rope_grid=(2, 2))
    plain = kd.layers.SelfAttention(16, 2)
    x = np.random.default_rng(2).standard_normal((1, 6, 16)).astype("float32")  # 2 extra tokens + 4 patches
    attention(x), plain(x)
    plain.set_weights(attention.get_weights())
    assert max_abs_diff(attention(x), plain(x)) > 1e-4
    q = np.random.default_rng(3).standard_normal((1, 6, 2, 8)).astype("float32")
    cos, sin = attention.rope_cos, attention.rope_sin
    rotated = to_numpy(kd.layers.apply_rope_to_tail(q, cos, sin))
    assert_close(rotated[:, :2], q[:, :2], atol=0.0, what="leading tokens")
    assert_close(rotated[:, 2:], kd.layers.apply_rope(q[:, 2:], cos, sin), atol=1e-6, what="patch tokens")


@pytest.mark.parametrize("kind", ["dit", "uvit"])
def test_round_trip_with_every_option(kind, tmp_path):
    model = randomise(tiny(kind, **OPTIONS), stddev=0.2)
    loaded = run_serialization_test(model, inputs(), tmp_path, atol=1e-6)
    assert all(loaded.get_config()[key] == value for key, value in OPTIONS.items())


@pytest.mark.parametrize("kind", ["dit", "uvit"])
def test_input_gradient_matches_finite_differences(kind):
    model = randomise(tiny(kind, **OPTIONS), seed=3, stddev=0.2)
    batch = inputs()
    direction = np.random.default_rng(4).standard_normal(batch["x"].shape).astype("float32")

    def f(x):
        return model({**batch, "x": x})

    grad = to_numpy(gradient(f, batch["x"]))
    h = 1e-2
    numeric = (to_numpy(f(batch["x"] + h * direction)).sum() - to_numpy(f(batch["x"] - h * direction)).sum()) / (2 * h)
    analytic = float(np.sum(grad * direction))
    assert np.all(np.isfinite(grad)) and abs(analytic) > 1e-3
    assert abs(analytic - numeric) <= 2e-2 * abs(numeric) + 1e-3, f"autodiff {analytic} vs finite differences {numeric}"


def test_fit_with_every_option_and_the_direction_loss():
    images = np.random.default_rng(5).uniform(-1, 1, (16, 8, 8, 1)).astype("float32")
    objective = kd.diffusion.RectifiedFlow(direction_weight=1.0, direction_axes="sample")
    model = kd.tasks.DiffusionModel(tiny("dit", **OPTIONS), objective, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = [to_numpy(w).copy() for w in model.backbone.trainable_weights]
    history = model.fit(images, np.arange(16) % 4, batch_size=8, epochs=2, verbose=0)  # adaLN-Zero: 2+ steps
    assert np.isfinite(history.history["loss"][0])
    frozen = [w.path for w, b in zip(model.backbone.trainable_weights, before) if max_abs_diff(w, b) == 0]
    assert not frozen, f"weights without a gradient: {frozen}"


@pytest.mark.parametrize("bad, match", [
    ({"norm_type": "batch"}, "norm_type"), ({"mlp_type": "relu"}, "mlp_type"),
    ({"rope": True, "hidden_size": 24, "num_heads": 4}, "divisible by 4"),
])
def test_bad_options(bad, match):
    config = {**dict(input_size=8, patch_size=2, in_channels=1, hidden_size=32, depth=3, num_heads=2), **bad}
    with pytest.raises(ValueError, match=match):
        kd.models.DiT(**config)
