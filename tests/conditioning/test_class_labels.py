"""ClassConditioner: label names, null class, CFG dropout, shapes, bad labels, the table the converters load."""

import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import assert_close, to_numpy

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def make(**kwargs):
    return kd.conditioning.ClassConditioner(10, 16, label_names=NAMES, seed=1, **kwargs)


def test_names_digits_and_ints_map_to_the_same_class():
    conditioner = make()
    assert conditioner.encode(["seven", "7", 7, "Seven"]).tolist() == [7, 7, 7, 7]
    assert conditioner.encode("seven").tolist() == [7]


def test_vector_and_single_token_are_the_label_embedding():
    conditioner = make()
    vector, tokens = conditioner(np.array([7, 10]))
    assert tuple(vector.shape) == (2, 16) and tuple(tokens.shape) == (2, 1, 16)
    table = to_numpy(conditioner.embedding.embeddings)
    assert_close(vector, table[[7, 10]], what="label vectors")
    assert_close(tokens[:, 0], vector, what="token == vector")


def test_null_condition_is_the_extra_label_and_dropout_uses_it():
    conditioner = make(dropout_prob=0.5)
    null = conditioner.null_condition(3)
    assert null.tolist() == [10, 10, 10]
    labels = np.full((400,), 3, dtype="int32")
    dropped_vector = to_numpy(conditioner(labels, training=True)[0])
    null_vector = to_numpy(conditioner(null[:1])[0])[0]
    is_null = np.all(np.isclose(dropped_vector, null_vector), axis=1)
    assert 0.35 < is_null.mean() < 0.65, f"dropped fraction {is_null.mean()} for dropout_prob=0.5"
    assert not np.any(np.all(np.isclose(to_numpy(conditioner(labels)[0]), null_vector), axis=1)), "dropout at inference"


def test_bad_labels_are_clear_errors():
    conditioner = make()
    with pytest.raises(ValueError, match="Unknown class label 'sevn'.*seven"):
        conditioner.encode(["sevn"])
    with pytest.raises(ValueError, match="Empty label prompt"):
        conditioner.encode([""])
    with pytest.raises(ValueError, match=r"integers in \[0, 10\]"):
        conditioner.prepare(np.array([11]), 1)
    with pytest.raises(ValueError, match="label_names has 2 names"):
        kd.conditioning.ClassConditioner(3, 8, label_names=["a", "b"])
    with pytest.raises(ValueError, match="no null class"):
        kd.conditioning.ClassConditioner(3, 8, dropout_prob=0.0).null_condition(1)


def test_serialization_round_trip():
    conditioner = make()
    clone = kd.conditioning.ClassConditioner.from_config(conditioner.get_config())
    assert clone.get_config() == conditioner.get_config()
    assert clone.encode("nine").tolist() == [9]


def test_table_layout_and_vocabulary():
    """One (num_classes + 1, D) table (what the DiT converters load); the names describe conditions."""
    conditioner = make()
    conditioner.build((None,))
    assert [tuple(w.shape) for w in conditioner.weights] == [(11, 16)]
    assert conditioner.every_condition().tolist() == list(range(10))
    assert conditioner.captions(np.array([7, 10])) == ["seven", "<null>"]
    assert conditioner.fields == ("labels", "class_names") and conditioner.names == NAMES
    assert kd.conditioning.ClassConditioner(3, 8).names == ["0", "1", "2"]
