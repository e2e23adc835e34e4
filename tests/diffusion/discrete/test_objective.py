"""DiscreteCTMC: the forward draws, the loss (the true posterior scores best), training through fit, bad input."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_dit as kd
from keras_dit.diffusion.discrete import DiscreteCTMC, TauLeaping
from tests.diffusion.discrete.tiny import S, data_images, true_model_fn
from tests.helpers import BACKEND


def test_states_round_trip_and_initial_states_are_stationary():
    objective = DiscreteCTMC(5, "gaussian", Q_sigma=1.5)
    states = np.arange(5).reshape(1, 5, 1, 1)
    images = objective.from_states(states)
    np.testing.assert_array_equal(ops.convert_to_numpy(objective.to_states(images)), states)
    draws = ops.convert_to_numpy(objective.initial_states(keras.random.normal((20000,), seed=0)))
    frequencies = np.bincount(draws, minlength=5) / len(draws)
    assert np.abs(frequencies - objective.rate_matrix.stationary).max() < 0.015, frequencies


@pytest.mark.parametrize("rate", ["uniform", "gaussian"])
def test_add_noise_draws_the_forward_transition(rate):
    objective = DiscreteCTMC(S, rate, rate_sigma=2.0, Q_sigma=2.0, time_exponential=10.0, time_base=0.5)
    n = 4000
    x0 = np.broadcast_to(objective.from_states(np.array([0, 1, 2, 3]).reshape(1, 2, 2, 1)), (n, 2, 2, 1))
    t = np.full((n,), 0.3, "float32")
    x_t = ops.convert_to_numpy(objective.add_noise(x0, keras.random.normal((n, 2, 2, 1), seed=3), t))
    expected = objective.rate_matrix.transition_numpy([0.3])[0]  # row i: q_t(. | i)
    for d in range(4):
        frequencies = np.bincount(x_t.reshape(n, 4)[:, d].astype(int), minlength=S) / n
        assert np.abs(frequencies - expected[d]).max() < 0.03, (d, frequencies, expected[d])


@pytest.mark.parametrize("rate", ["uniform", "gaussian"])
def test_loss_is_lowest_for_the_true_posterior(rate):
    # time_base 0.03 (not the reference's 3.0, made for S = 256) keeps S = 4 from mixing fully before t ~ 1.
    objective = DiscreteCTMC(S, rate, rate_const=3.0, rate_sigma=2.0, Q_sigma=2.0, time_base=0.03)
    n = 2000
    x0 = data_images(n)
    t = keras.random.uniform((n,), 0.05, 1.0, seed=0)
    x_t = objective.add_noise(x0, keras.random.normal((n, 2, 2, 1), seed=1), t)
    true_logits = true_model_fn(objective)(x_t, t)
    losses = {
        "true": objective.loss(true_logits, x0, None, t, x_t),
        "flat": objective.loss(ops.zeros_like(true_logits), x0, None, t, x_t),
        "tempered": objective.loss(0.5 * ops.maximum(true_logits, -20.0), x0, None, t, x_t),
    }
    means = {k: float(np.mean(ops.convert_to_numpy(v))) for k, v in losses.items()}
    assert tuple(losses["true"].shape) == (n,) and all(np.isfinite(v) for v in means.values())
    assert means["true"] < means["tempered"] < means["flat"], means


def test_fit_learns_and_generates_with_guidance():
    inner = kd.models.DiT(input_size=2, patch_size=1, in_channels=8, hidden_size=32, depth=1, num_heads=2,
                          num_classes=2, seed=0)
    backbone = kd.models.CategoricalBackbone(inner, S, 1)
    model = kd.tasks.DiffusionModel(backbone, DiscreteCTMC(S, "uniform", rate_const=3.0), seed=0)
    model.compile(optimizer=keras.optimizers.AdamW(3e-3, weight_decay=0.0))
    images = data_images(256)
    labels = (images[:, 0, 0, 0] > 0).astype("int32")
    # The loss on one fixed batch of noisy states, before and after training.
    t = keras.random.uniform((256,), 0.01, 1.0, seed=0)
    x_t = model.objective.add_noise(images, keras.random.normal(images.shape, seed=1), t)

    def fixed_loss():
        prediction = model.denoise(x_t, t, labels)
        return float(np.mean(ops.convert_to_numpy(model.objective.loss(prediction, images, None, t, x_t))))

    before = fixed_loss()
    history = model.fit(images, labels, batch_size=64, epochs=10, verbose=0)
    after = fixed_loss()
    assert np.all(np.isfinite(history.history["loss"])) and after < before, (BACKEND, before, after)
    out = model.generate(np.array([0, 1, 1]), num_steps=3, sampler=TauLeaping(), guidance_scale=2.0, seed=0)
    assert out.shape == (3, 2, 2, 1) and out.dtype == np.uint8
    assert set(np.unique(out)) <= {0, 85, 170, 255}  # S = 4 levels


def test_serialization_round_trip():
    objective = DiscreteCTMC(6, "gaussian", rate_sigma=3.0, nll_weight=0.01)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(objective))
    assert isinstance(clone, DiscreteCTMC) and clone.get_config() == objective.get_config()
    np.testing.assert_allclose(clone.rate_matrix.rate, objective.rate_matrix.rate)


def test_bad_input():
    with pytest.raises(ValueError, match="num_states"):
        DiscreteCTMC(1)
    with pytest.raises(ValueError, match="rate matrix"):
        DiscreteCTMC(4, "cosine")
    objective = DiscreteCTMC(4)
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        objective.to_states(np.array([[0.0, 1.5]]))
    for bad in (np.array([[0.0, 4.0]]), np.array([[-1.0, 0.0]]), np.array([[0.5, 1.0]])):
        with pytest.raises(ValueError, match=r"integers in \[0, 3\]"):
            objective.reverse_rates(np.zeros((1, 2, 4)), bad, np.ones((1,), "float32"))
    for kwargs in ({"nll_weight": -1}, {"eps_ratio": 0}, {"min_time": 1.0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            DiscreteCTMC(4, **kwargs)
