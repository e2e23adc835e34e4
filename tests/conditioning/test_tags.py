"""TagConditioner: encoding prompts, order invariance, null condition, masking, bad input, serialization."""

import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import assert_close, max_abs_diff, to_numpy

VOCAB = ["blush", "smile", "hat", "glasses", "red hair"]


def make(**kwargs):
    kwargs = {"num_heads": 2, "seed": 0, **kwargs}
    return kd.conditioning.TagConditioner(VOCAB, 16, **kwargs)


def test_encode_tags_builds_multi_hot_rows():
    conditioner = make()
    rows = conditioner.encode_tags(["blush, smile", ["hat"], "red hair,blush"])
    assert rows.tolist() == [[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [1, 0, 0, 0, 1]]


def test_shapes_and_default_two_layers():
    conditioner = make()
    assert len(conditioner.blocks) == 2
    vector, tokens = conditioner(conditioner.encode(["blush, smile", "hat"]))
    assert tuple(vector.shape) == (2, 16) and tuple(tokens.shape) == (2, len(VOCAB) + 1, 16)


def test_output_depends_on_the_tags_not_their_order():
    conditioner = make()
    a = conditioner(conditioner.encode(["blush, smile", "smile, blush", "hat"]))[0]
    assert_close(a[0], a[1], atol=1e-5, what="same tags, other order")
    assert max_abs_diff(a[0], a[2]) > 1e-3, "different tags gave the same vector"


def test_absent_tags_do_not_leak_into_the_encoding():
    """Absent tags are masked: changing an absent tag's embedding leaves the vector unchanged."""
    conditioner = make()
    x = conditioner.encode(["blush"])
    before = to_numpy(conditioner(x)[0])
    table = to_numpy(conditioner.tag_embeddings)
    table[VOCAB.index("hat")] += 5.0
    conditioner.tag_embeddings.assign(table)
    assert_close(conditioner(x)[0], before, atol=1e-5, what="vector after editing an absent tag")


def test_null_condition_maps_to_the_learned_null_and_dropout_uses_it():
    conditioner = make(dropout_prob=0.5)
    null = conditioner.null_condition(2)
    assert null.shape == (2, len(VOCAB)) and not null.any()
    vector, tokens = conditioner(null)
    assert_close(vector[0], conditioner.null_vector, what="null vector")
    assert_close(tokens[1], conditioner.null_tokens, what="null tokens")
    x = np.repeat(conditioner.encode(["hat"]), 300, axis=0)
    dropped = to_numpy(conditioner(x, training=True)[0])
    fraction = np.all(np.isclose(dropped, to_numpy(conditioner.null_vector)), axis=1).mean()
    assert 0.35 < fraction < 0.65, f"dropped fraction {fraction} for dropout_prob=0.5"


def test_bad_input_is_a_clear_error():
    conditioner = make(max_tags=2)
    with pytest.raises(ValueError, match="Unknown tag 'smle'.*smile"):
        conditioner.encode(["blush, smle"])
    with pytest.raises(ValueError, match="Empty tag prompt"):
        conditioner.encode([""])
    with pytest.raises(ValueError, match="max_tags=2"):
        conditioner.encode(["blush, smile, hat"])
    with pytest.raises(ValueError, match="expects conditions of shape"):
        conditioner.prepare(np.zeros((2, 4), "float32"), 2)
    with pytest.raises(ValueError, match="Duplicate tags"):
        kd.conditioning.TagConditioner(["a", "a"], 8)


def test_config_round_trip_rebuilds_the_same_function():
    conditioner = make()
    x = conditioner.encode(["blush, smile", "hat"])
    expected = conditioner(x)[0]
    clone = kd.conditioning.TagConditioner.from_config(conditioner.get_config())
    assert clone.get_config() == conditioner.get_config()
    clone(x)
    clone.set_weights(conditioner.get_weights())
    assert_close(clone(x)[0], expected, atol=1e-6, what="vector of the rebuilt conditioner")


def test_vocabulary_names_and_captions():
    conditioner = make()
    rows = conditioner.encode(["hat, blush", "red hair"])
    assert conditioner.names == VOCAB and conditioner.captions(rows) == ["blush,hat", "red hair"]
    assert conditioner.every_condition() is None and conditioner.fields == ("tags", "tag_vocabulary")
