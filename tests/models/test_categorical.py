"""CategoricalBackbone: logits shapes for DiT / U-ViT, the logistic head, serialization and bad input."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_dit as kd
from keras_dit.models.categorical import CategoricalHead
from tests.helpers import assert_close, run_serialization_test

S = 5


def make(kind="DiT", **kwargs):
    cls = {"DiT": kd.models.DiT, "UViT": kd.models.UViT}[kind]
    inner = cls(input_size=4, patch_size=2, in_channels=8, hidden_size=16, depth=1, num_heads=2, num_classes=3, seed=0)
    return kd.models.CategoricalBackbone(inner, S, in_channels=2, **kwargs)


def inputs(batch=2):
    rng = np.random.default_rng(0)
    return {"x": rng.integers(0, S, (batch, 4, 4, 2)).astype("float32"), "t": np.array([3.0, 700.0][:batch], "float32"),
            "condition": np.array([0, 3][:batch], "int32")}


@pytest.mark.parametrize("kind", ["DiT", "UViT"])
@pytest.mark.parametrize("options", [{}, {"parameterization": "logistic", "fix_logistic": True,
                                          "input_encoding": "ordinal", "data_min_max": [0, S - 1]}])
def test_logits_shape_and_serialization(kind, options, tmp_path):
    model = make(kind, **options)
    logits = model(inputs())
    assert tuple(logits.shape) == (2, 4, 4, 2, S)
    assert np.all(np.isfinite(ops.convert_to_numpy(logits)))
    run_serialization_test(model, inputs(), tmp_path, atol=1e-5)


def test_embedding_sees_the_states():
    model = make()
    model.backbone.set_weights([np.random.default_rng(1).normal(0, 0.1, w.shape) for w in model.backbone.get_weights()])
    a, b = inputs(), inputs()
    b["x"] = (b["x"] + 1) % S
    assert np.abs(ops.convert_to_numpy(model(a)) - ops.convert_to_numpy(model(b))).max() > 1e-3


@pytest.mark.parametrize("fix_logistic", [False, True])
def test_logistic_head_is_a_discretised_logistic(fix_logistic):
    head = CategoricalHead(S, 1, "logistic", fix_logistic)
    features = ops.zeros((1, 1, 1, 4))
    head.build(features.shape)
    mu, log_scale = 0.3, 1.5
    head.dense.set_weights([np.zeros((4, 2), "float32"), np.array([mu, log_scale], "float32")])
    probs = ops.convert_to_numpy(ops.exp(head(features)))[0, 0, 0, 0]
    edges = np.linspace(-1, 1, S + 1)
    cdf = 1 / (1 + np.exp(-(edges - mu) * np.exp(-(log_scale - 2))))
    assert_close(probs, np.diff(cdf), atol=1e-5, what="bin masses")  # truncated: sum < 1, mass from the bins only


def test_bad_input():
    model = make()
    for bad in (S, -1, 0.5):
        x = inputs()
        x["x"][0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match=r"integers in \[0, 4\]"):
            model(x)
    with pytest.raises(ValueError, match="num_states"):
        make().__class__(make().backbone, 1)
    with pytest.raises(ValueError, match="parameterization"):
        make(parameterization="softmax")
    with pytest.raises(ValueError, match="learn_sigma"):
        inner = kd.models.DiT(input_size=4, patch_size=2, in_channels=8, hidden_size=16, depth=1, num_heads=2,
                              learn_sigma=True)
        kd.models.CategoricalBackbone(inner, S)
