"""Conditions from the saved model alone: generate(["seven"]) after a reload, ``backbone.prepare_condition`` for
every kind, and the null conditions of classifier-free guidance."""

import os

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import assert_close, max_abs_diff

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TINY = dict(input_size=4, patch_size=2, in_channels=1, hidden_size=16, depth=1, num_heads=2, seed=0)
SAMPLE = dict(num_steps=2, seed=0, return_latents=True)


def tiny_model(conditioner=None, **backbone):
    conditioner = conditioner or {"kind": "labels", "num_classes": 10, "label_names": NAMES}
    model = kd.models.DiT(**TINY, conditioner=conditioner, **backbone)
    rng = np.random.default_rng(0)  # random weights everywhere (adaLN-Zero would hide the condition)
    model.set_weights([rng.normal(0, 0.3, w.shape).astype("float32") for w in model.get_weights()])
    return kd.tasks.DiffusionModel(model, kd.diffusion.RectifiedFlow(), seed=0)


def test_generate_by_name_from_a_reloaded_file_alone(tmp_path):
    model = tiny_model()
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert os.listdir(tmp_path) == ["model.keras"]
    by_name = loaded.generate(["seven", "Two"], **SAMPLE)
    assert_close(by_name, model.generate([7, 2], **SAMPLE), what="names == labels after a reload")
    assert max_abs_diff(by_name[0], loaded.generate(["three"], **SAMPLE)[0]) > 1e-4
    assert_close(loaded.generate("seven", **SAMPLE), by_name[:1], what="one name is a batch of one")
    with pytest.raises(ValueError, match=r"Unknown class label 'sevn'.*closest: \['seven'"):
        loaded.generate(["sevn"], **SAMPLE)


def test_prepare_condition_converts_and_checks_each_kind():
    labels = tiny_model().backbone
    assert labels.prepare_condition(["seven", 3, "4"]).tolist() == [7, 3, 4]
    assert labels.prepare_condition(np.array([1, 2]), 2).tolist() == [1, 2]
    with pytest.raises(ValueError, match="with B=3; got shape"):
        labels.prepare_condition(np.array([1, 2]), 3)
    with pytest.raises(ValueError, match=r"Class labels must be integers in \[0, 10\], got values in \[1, 11\]"):
        labels.prepare_condition(np.array([1, 11]))
    with pytest.raises(ValueError, match="class-conditional.*pass 'condition'"):
        labels.prepare_condition(None)
    tags = kd.models.DiT(**TINY, conditioner={"kind": "tags", "vocabulary": ["blush", "hat"], "num_heads": 2})
    assert tags.prepare_condition("hat, blush").tolist() == [[1.0, 1.0]]
    with pytest.raises(ValueError, match="Unknown tag 'cap'"):
        tags.prepare_condition(["cap"])
    params = kd.models.DiT(**TINY, conditioner={"kind": "parameters", "num_parameters": 3})
    assert params.prepare_condition([[0.5, np.nan, 1.0]]).shape == (1, 3)
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        params.prepare_condition(np.zeros((2, 4), "float32"))
    plain = kd.models.DiT(**TINY)
    assert plain.prepare_condition(None) is None
    with pytest.raises(ValueError, match="unconditional but got a 'condition'"):
        plain.prepare_condition([1])


def test_null_conditions_are_the_unconditional_branch_of_guidance():
    model = tiny_model()
    null = model.backbone.null_conditions(2)
    assert null.tolist() == [10, 10]
    guided = model.generate([7, 1], guidance_scale=3.0, **SAMPLE)
    assert_close(model.generate([7, 1], negative_condition=null, guidance_scale=3.0, **SAMPLE), guided,
                 what="the null condition is the default negative")
    assert max_abs_diff(guided, model.generate([7, 1], **SAMPLE)) > 1e-4
    without = tiny_model(conditioner={"kind": "labels", "num_classes": 10, "dropout_prob": 0.0})
    assert without.backbone.null_conditions(2) is None
    with pytest.raises(ValueError, match="needs a null condition"):
        without.generate([7], guidance_scale=3.0, **SAMPLE)
