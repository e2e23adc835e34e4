"""U-ViT: the backbone contract (on tags), labels by name, long skips, bad input, training, presets.

Models are built once per module (building is the slow part on JAX's CPU backend).
"""

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import TINY, max_abs_diff, run_backbone_test, tiny_backbone, to_numpy

UNCONDITIONAL = {**TINY["UViT"], "num_classes": None}
TAGS = {"kind": "tags", "vocabulary": ["a", "b", "c"], "num_heads": 2}
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
X = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
T = np.array([3.0, 700.0], "float32")


@pytest.fixture(scope="module")
def labels_model():
    keras.utils.set_random_seed(0)
    return tiny_backbone("UViT", depth=5, num_classes=None,
                         conditioner={"kind": "labels", "num_classes": 10, "label_names": NAMES})


@pytest.fixture(scope="module")
def tags_model():
    keras.utils.set_random_seed(0)
    return kd.models.UViT(**UNCONDITIONAL, conditioner=TAGS)


def test_backbone_contract(tmp_path):
    loaded = run_backbone_test(kd.models.UViT, {**UNCONDITIONAL, "conditioner": TAGS},
                               {"x": X, "t": T, "condition": np.array([[1, 0, 0], [0, 1, 1]], "float32")},
                               X.shape, tmp_path)
    assert isinstance(loaded.conditioner, kd.conditioning.TagConditioner)


def test_labels_by_number_or_name_and_null_condition(labels_model):
    assert labels_model.null_condition == 10
    by_name = labels_model({"x": X, "t": T, "condition": ["seven", "3"]})
    by_number = labels_model({"x": X, "t": T, "condition": np.array([7, 3])})
    assert tuple(by_name.shape) == X.shape
    np.testing.assert_allclose(to_numpy(by_name), to_numpy(by_number), atol=1e-6)
    null = labels_model({"x": X, "t": T, "condition": np.array([labels_model.null_condition] * 2)})
    assert max_abs_diff(null, by_number) > 1e-5, "the label token must change the output"


def test_tags_and_unconditional(tags_model):
    out = tags_model({"x": X, "t": T, "condition": ["a, b", "c"]})
    assert tuple(out.shape) == X.shape and np.isfinite(to_numpy(out)).all()
    null = np.stack([tags_model.null_condition] * 2)
    assert max_abs_diff(tags_model({"x": X, "t": T, "condition": null}), out) > 1e-5
    plain = kd.models.UViT(**UNCONDITIONAL)
    assert plain.null_condition is None and tuple(plain({"x": X, "t": 5.0}).shape) == X.shape


def test_long_skips_connect_mirrored_blocks(labels_model):
    out_blocks = [layer for layer in labels_model.layers if layer.name.startswith("out_block")]
    assert len(out_blocks) == 2 and all(block.skip for block in out_blocks)
    node = labels_model.get_layer("out_block_1")._inbound_nodes[0]
    skip_source = node.arguments.args[1]._keras_history.operation
    assert skip_source.name == "in_block_0", "the deepest block must take the shallowest block's output"


def test_bad_input(tags_model):
    with pytest.raises(ValueError, match="depth must be odd"):
        tiny_backbone("UViT", depth=4)
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        tiny_backbone("UViT", num_heads=3)
    with pytest.raises(ValueError, match="either num_classes"):
        tiny_backbone("UViT", conditioner="labels")
    with pytest.raises(ValueError, match="Unknown tag 'z'"):
        tags_model({"x": X, "t": T, "condition": ["a", "z"]})
    with pytest.raises(ValueError, match="Empty tag prompt"):
        tags_model({"x": X, "t": T, "condition": ["a", ""]})
    with pytest.raises(ValueError, match="pass 'condition'"):
        tags_model({"x": X, "t": T})
    with pytest.raises(ValueError, match="built for"):
        tags_model({"x": X[:, :6], "t": T, "condition": ["a", "b"]})


def test_fit_step_with_condition_dropout(labels_model):
    labels_model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="mse")
    inputs = {"x": X, "t": T, "condition": np.array([1, 2], "int32")}
    before = to_numpy(labels_model.conditioner.embedding.embeddings).copy()
    history = labels_model.fit(inputs, X, epochs=2, batch_size=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert max_abs_diff(labels_model.conditioner.embedding.embeddings, before) > 0, "label table not trained"


def test_presets_follow_the_paper_table():
    assert set(kd.models.UViT.presets) >= {"UViT-S/2", "UViT-M/4", "UViT-L/2", "UViT-H/2"}
    large = kd.models.UViT.presets["UViT-L/2"]
    assert (large["depth"], large["hidden_size"], large["num_heads"]) == (21, 1024, 16)
    with pytest.raises(ValueError, match="Did you mean 'UViT-S/2'"):
        kd.models.UViT.from_preset("UViT-S2")
