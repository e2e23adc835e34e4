"""Rate matrices: transition probabilities against scipy's matrix exponential, stationarity, bad input."""

import numpy as np
import pytest
import scipy.linalg
from keras import ops

from keras_dit.diffusion.discrete import RateMatrix
from tests.helpers import assert_close

TIMES = np.array([0.0, 0.01, 0.1, 0.37, 0.8, 1.0])
CASES = [("uniform", 2, {}), ("uniform", 6, {"rate_const": 0.7}), ("gaussian", 3, {}),
         ("gaussian", 8, {"rate_sigma": 2.0, "Q_sigma": 3.0}),
         ("gaussian", 16, {"rate_sigma": 6.0, "Q_sigma": 512.0, "time_exponential": 10.0, "time_base": 1.0})]


@pytest.mark.parametrize("name,num_states,params", CASES)
def test_transition_matches_expm_and_rows_sum_to_one(name, num_states, params):
    rates = RateMatrix(name, num_states, **params)
    expected = np.stack([scipy.linalg.expm(rates.integral(t) * rates.rate) for t in TIMES])
    assert_close(rates.transition_numpy(TIMES), expected, atol=1e-10, what="float64 transition")
    keras_p = rates.transition(ops.convert_to_tensor(TIMES.astype("float32")))
    assert_close(keras_p, expected, atol=2e-6, what="keras.ops transition")
    assert_close(ops.sum(keras_p, axis=-1), np.ones((len(TIMES), num_states)), atol=1e-6, what="row sums")
    assert np.all(np.asarray(ops.convert_to_numpy(keras_p)) >= 0)


@pytest.mark.parametrize("name,num_states,params", CASES)
def test_rate_matrix_is_a_generator_with_its_stationary_distribution(name, num_states, params):
    rates = RateMatrix(name, num_states, **params)
    off_diagonal = rates.rate - np.diag(np.diag(rates.rate))
    assert np.all(off_diagonal >= 0) and np.allclose(rates.rate.sum(1), 0)
    assert np.allclose(rates.stationary @ rates.rate, 0, atol=1e-12)
    # Detailed balance, and the process is near stationary at t = 1 for the reference's gaussian schedule.
    flux = rates.stationary[:, None] * rates.rate
    assert np.allclose(flux, flux.T, atol=1e-12)
    if name == "gaussian":
        assert np.abs(rates.transition_numpy([1.0])[0] - rates.stationary).max() < 1e-3


def test_rates_scale_with_beta():
    rates = RateMatrix("gaussian", 5, time_exponential=10.0, time_base=2.0)
    t = np.array([0.2, 0.9], "float32")
    expected = np.stack([rates.beta(float(s)) * rates.rate for s in t])
    assert_close(rates.rates(ops.convert_to_tensor(t)), expected, atol=1e-4, rtol=1e-6)
    assert np.isclose(rates.beta(0.3), 2.0 * np.log(10.0) * 10.0**0.3)


@pytest.mark.parametrize(
    "args,kwargs,match",
    [(("uniform", 1), {}, "num_states"), (("uniform", 2.5), {}, "num_states"), (("gausian", 4), {}, "gaussian"),
     (("laplace", 4), {}, "rate matrix"), (("gaussian", 4), {"rate_sigma": 0.0}, "rate_sigma"),
     (("gaussian", 4), {"time_exponential": 1.0}, "time_exponential")],
)
def test_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        RateMatrix(*args, **kwargs)
