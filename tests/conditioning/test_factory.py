"""get_conditioner: kinds, aliases, dicts, instances, serialized configs, errors."""

import keras
import pytest

import keras_dit as kd


def test_kinds_and_aliases():
    get = kd.conditioning.get_conditioner
    assert isinstance(get("labels", 8, num_classes=3), kd.conditioning.ClassConditioner)
    assert isinstance(get("params", 8, num_parameters=4), kd.conditioning.ParameterConditioner)
    tags = get({"kind": "tags", "vocabulary": ["a", "b"]}, 8, num_heads=2)
    assert isinstance(tags, kd.conditioning.TagConditioner) and tags.num_heads == 2
    again = get(keras.saving.serialize_keras_object(tags), 8)
    assert again.get_config() == tags.get_config() and again is not tags
    assert get(tags, 8) is tags


def test_errors():
    get = kd.conditioning.get_conditioner
    with pytest.raises(ValueError, match="Unknown conditioner kind 'text'"):
        get("text", 8)
    with pytest.raises(ValueError, match="hidden_size=8 but the backbone's width is 16"):
        get(get("labels", 8, num_classes=3), 16)
    with pytest.raises(ValueError, match="needs hidden_size"):
        get("labels", num_classes=3)
