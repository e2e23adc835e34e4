"""CategoricalBackbone: the backbone contract, logits shapes for DiT / U-ViT and the options, the logistic head
and bad input."""

import numpy as np
import pytest
from keras import ops

import keras_dit as kd
from keras_dit.models.categorical import CategoricalHead
from tests.helpers import NUM_STATES as S
from tests.helpers import assert_close, randomise, run_backbone_test, tiny_categorical as make

LOGISTIC = {"parameterization": "logistic", "fix_logistic": True, "input_encoding": "ordinal",
            "data_min_max": [0, S - 1]}


def inputs(batch=2):
    rng = np.random.default_rng(0)
    return {"x": rng.integers(0, S, (batch, 8, 8, 2)).astype("float32"), "t": np.array([3.0, 700.0][:batch], "float32"),
            "condition": np.array([0, 3][:batch], "int32")}


def test_backbone_contract(tmp_path):
    model = make()
    run_backbone_test(type(model), model.get_config(), inputs(), (2, 8, 8, 2, S), tmp_path)


@pytest.mark.parametrize("kind, options", [("UViT", {}), ("DiT", LOGISTIC)])
def test_logits_shape_and_config(kind, options):
    model = make(kind, **options)
    logits = model(inputs())
    assert tuple(logits.shape) == (2, 8, 8, 2, S)
    assert np.all(np.isfinite(ops.convert_to_numpy(logits)))
    config = model.get_config()
    assert type(model).from_config(config).get_config() == config


def test_embedding_sees_the_states():
    model = make()
    randomise(model.backbone, seed=1)
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
