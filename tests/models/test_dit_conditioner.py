"""DiT's conditioning: one conditioner path (labels, tags), null condition, serialization, and the `.keras` files
saved before DiT used a conditioner (their own label table)."""

import os

import keras
import numpy as np
import pytest

import keras_dit as kd
from keras_dit.conditioning.class_labels import ClassLabelEmbedding
from tests.helpers import assert_close, max_abs_diff, run_serialization_test, to_numpy

TINY = dict(input_size=8, patch_size=2, in_channels=4, hidden_size=16, depth=2, num_heads=2)
X = np.random.default_rng(0).standard_normal((2, 8, 8, 4)).astype("float32")
T = np.array([3.0, 700.0], "float32")
# Written by the code of commit 6d0f089 (DiT's own ClassLabelEmbedding, weights at class_label_embedding/vars/0):
#   DiT(input_size=4, patch_size=2, in_channels=1, hidden_size=8, depth=1, num_heads=2, num_classes=3, seed=0),
#   weights set to N(0, 0.3) draws, wrapped in DiffusionModel(GaussianDiffusion(), seed=0) and saved; the .npz
#   holds inputs (labels 0, 1, 2 and the null class 3) and that code's backbone outputs for them.
LEGACY = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data_files", "dit_labels_6d0f089")


def leave_adaln_zero(model):
    """Random final-layer weights, so that the condition shows in the output (adaLN-Zero outputs 0)."""
    final = model.get_layer("final_layer")
    for i, kernel in enumerate((final.linear.kernel, final.modulation.dense.kernel)):
        kernel.assign(np.random.default_rng(i).normal(0, 0.1, tuple(kernel.shape)).astype("float32"))
    return model


def test_dit_with_tags(tmp_path):
    keras.utils.set_random_seed(0)
    model = leave_adaln_zero(kd.models.DiT(**TINY, conditioner={"kind": "tags", "vocabulary": ["blush", "smile", "hat"],
                                                                 "num_heads": 2}))
    assert model.null_condition.tolist() == [0.0, 0.0, 0.0]
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


def test_num_classes_is_a_class_conditioner_with_names_by_config(tmp_path):
    """num_classes builds the same ClassConditioner as U-ViT's; a labels conditioner with names reads names."""
    keras.utils.set_random_seed(1)
    plain = kd.models.DiT(**TINY, num_classes=3)
    assert type(plain.conditioner) is kd.conditioning.ClassConditioner and plain.null_condition == 3
    assert plain.get_config()["conditioner"] is None
    named = leave_adaln_zero(kd.models.DiT(**TINY, conditioner={"kind": "labels", "num_classes": 3,
                                                                  "label_names": ["cat", "dog", "owl"]}))
    by_name = named({"x": X, "t": T, "condition": ["owl", "Cat"]})
    assert_close(by_name, named({"x": X, "t": T, "condition": np.array([2, 0])}), what="names == labels")
    assert max_abs_diff(by_name, named({"x": X, "t": T, "condition": np.array([2, 3])})) > 1e-5
    loaded = run_serialization_test(named, {"x": X, "t": T, "condition": np.array([1, 3], "int32")}, tmp_path)
    assert loaded.conditioner.label_names == ["cat", "dog", "owl"]


def test_converters_load_the_conditioners_table():
    """The label table the DiT converters assign is the ClassConditioner's single (num_classes + 1, D) weight."""
    model = kd.models.DiT(**TINY, num_classes=5)
    table = model.conditioner.embedding.embeddings
    assert tuple(table.shape) == (6, 16) and [w.path for w in model.conditioner.weights] == [table.path]


def test_bad_labels_name_the_valid_range():
    model = kd.models.DiT(**TINY, num_classes=3)
    with pytest.raises(ValueError, match=r"Class labels must be integers in \[0, 3\], got values in \[0, 4\]"):
        model({"x": X, "t": T, "condition": np.array([0, 4])})
    with pytest.raises(ValueError, match="Unknown class label 'seven'.*no label names"):
        model({"x": X, "t": T, "condition": ["seven", "1"]})
    with pytest.raises(ValueError, match="class-conditional.*pass 'condition'"):
        model({"x": X, "t": T})


def test_file_saved_before_dit_used_a_conditioner_loads_with_the_same_outputs(tmp_path):
    model = keras.saving.load_model(LEGACY + ".keras")
    backbone = model.backbone
    assert type(backbone.conditioner) is ClassLabelEmbedding and backbone.null_condition == 3
    with np.load(LEGACY + ".npz") as npz:
        inputs = {key: npz[key] for key in ("x", "t")}
        inputs["condition"], expected = npz["labels"], npz["outputs"]
    outputs = to_numpy(backbone(inputs))
    assert_close(outputs, expected, atol=1e-5, what="outputs of the old file")
    assert max_abs_diff(outputs[0], outputs[1]) > 1e-2  # the labels matter: the table was loaded
    run_serialization_test(backbone, inputs, tmp_path)  # saved again, it keeps the layout it came with
    images = model.generate([0, 2], num_steps=2, guidance_scale=3.0, seed=0)  # CFG with the old null class
    assert images.shape == (2, 4, 4, 1) and images.dtype == np.uint8
