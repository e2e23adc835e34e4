"""DiT with a conditioner (tags here): shapes, the condition reaches adaLN, null condition, serialization."""

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import max_abs_diff, run_serialization_test

TINY = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=2, num_heads=2)
X = np.random.default_rng(0).standard_normal((2, 8, 8, 4)).astype("float32")
T = np.array([3.0, 700.0], "float32")


def test_dit_with_tags(tmp_path):
    keras.utils.set_random_seed(0)
    model = kd.models.DiT(**TINY, conditioner={"kind": "tags", "vocabulary": ["blush", "smile", "hat"],
                                               "num_heads": 2})
    assert model.label_embedding is None and model.null_condition.tolist() == [0.0, 0.0, 0.0]
    final = model.get_layer("final_layer")
    kernel = final.linear.kernel  # leave adaLN-Zero so that the condition shows in the output
    kernel.assign(np.random.default_rng(1).normal(0, 0.1, tuple(kernel.shape)).astype("float32"))
    kernel = final.modulation.dense.kernel
    kernel.assign(np.random.default_rng(2).normal(0, 0.1, tuple(kernel.shape)).astype("float32"))
    a = model({"x": X, "t": T, "condition": ["blush, smile", "hat"]})
    b = model({"x": X, "t": T, "condition": model.conditioner.null_condition(2)})
    assert tuple(a.shape) == X.shape and max_abs_diff(a, b) > 1e-5
    inputs = {"x": X, "t": T, "condition": model.conditioner.encode(["hat", "smile"])}
    run_serialization_test(model, inputs, tmp_path, atol=1e-5)
    with pytest.raises(ValueError, match="Unknown tag 'cap'"):
        model({"x": X, "t": T, "condition": ["cap", "hat"]})


def test_labels_and_conditioner_are_exclusive():
    with pytest.raises(ValueError, match="either num_classes"):
        kd.models.DiT(**TINY, num_classes=3, conditioner="labels")


def test_default_label_path_config_is_unchanged():
    config = kd.models.DiT.from_preset("DiT-S/2", input_size=8, depth=1, num_classes=3).get_config()
    assert "conditioner" not in config
