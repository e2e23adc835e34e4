"""ParameterConditioner: shapes, NaN as unspecified / null, wrong length, serialization."""

import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import assert_close, max_abs_diff, to_numpy


def test_shapes_any_length():
    for length in (1, 27):
        conditioner = kd.conditioning.ParameterConditioner(length, 16)
        vector, tokens = conditioner(np.random.rand(3, length).astype("float32"))
        assert tuple(vector.shape) == (3, 16) and tuple(tokens.shape) == (3, length, 16)


def test_outputs_follow_the_values():
    conditioner = kd.conditioning.ParameterConditioner(4, 16)
    x = np.array([[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.9]], "float32")
    vector, tokens = (to_numpy(a) for a in conditioner(x))
    assert max_abs_diff(vector[0], vector[1]) > 1e-4
    assert_close(tokens[0, :3], tokens[1, :3], what="tokens of equal parameters")
    assert max_abs_diff(tokens[0, 3], tokens[1, 3]) > 1e-4


def test_null_condition_is_all_nan_and_finite_inside():
    conditioner = kd.conditioning.ParameterConditioner(5, 16, dropout_prob=0.5)
    null = conditioner.null_condition(2)
    assert null.shape == (2, 5) and np.isnan(null).all()
    vector, tokens = conditioner(null)
    assert np.isfinite(to_numpy(vector)).all() and np.isfinite(to_numpy(tokens)).all()
    x = np.tile(np.linspace(0, 1, 5, dtype="float32"), (300, 1))
    dropped = to_numpy(conditioner(x, training=True)[0])
    fraction = np.all(np.isclose(dropped, to_numpy(vector)[0]), axis=1).mean()
    assert 0.35 < fraction < 0.65, f"dropped fraction {fraction} for dropout_prob=0.5"


def test_wrong_length_is_a_clear_error():
    conditioner = kd.conditioning.ParameterConditioner(27, 16)
    with pytest.raises(ValueError, match="27 values"):
        conditioner.encode(np.zeros(26))
    with pytest.raises(ValueError, match=r"\(B, 27\)"):
        conditioner.prepare(np.zeros((2, 26), "float32"), 2)
    with pytest.raises(ValueError, match="built for 27 parameters"):
        conditioner(np.zeros((2, 26), "float32"))


def test_config_round_trip_rebuilds_the_same_function():
    conditioner = kd.conditioning.ParameterConditioner(6, 16)
    x = np.random.rand(2, 6).astype("float32")
    x[1, 2] = np.nan
    expected = conditioner(x)[1]
    clone = kd.conditioning.ParameterConditioner.from_config(conditioner.get_config())
    assert clone.get_config() == conditioner.get_config()
    clone(x)
    clone.set_weights(conditioner.get_weights())
    assert_close(clone(x)[1], expected, what="tokens of the rebuilt conditioner")


def test_parameter_names_are_kept_in_the_config():
    conditioner = kd.conditioning.ParameterConditioner(2, 8, parameter_names=["level", "half"])
    clone = kd.conditioning.ParameterConditioner.from_config(conditioner.get_config())
    assert clone.names == ["level", "half"] and clone.fields == ("params", "param_names")
    assert clone.captions(np.zeros((2, 2))) == ["#0", "#1"]
    with pytest.raises(ValueError, match="parameter_names has 1 names but num_parameters=2"):
        kd.conditioning.ParameterConditioner(2, 8, parameter_names=["level"])
