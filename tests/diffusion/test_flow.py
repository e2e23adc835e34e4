"""RectifiedFlow: interpolation and target, time sampling with shift, loss, config, bad arguments."""

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import assert_close, gradient, to_numpy


def test_add_noise_target_and_loss():
    objective = kd.diffusion.RectifiedFlow()
    rng = np.random.default_rng(0)
    x0, noise = rng.uniform(-1, 1, (3, 4, 4, 2)).astype("float32"), rng.standard_normal((3, 4, 4, 2)).astype("float32")
    t = np.array([0.0, 0.3, 1.0], "float32")
    x_t = objective.add_noise(x0, noise, t)
    assert_close(x_t, (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * noise)
    assert_close(objective.target(x0, noise, t), noise - x0)
    prediction = rng.standard_normal(x0.shape).astype("float32")
    assert_close(objective.loss(prediction, x0, noise, t, x_t), ((prediction - (noise - x0)) ** 2).mean(axis=(1, 2, 3)))
    assert_close(objective.model_time(t), 1000 * t)
    assert objective.prediction_channels(4) == 4


def test_shift_time():
    assert_close(kd.diffusion.shift_time(np.array([0.0, 0.5, 1.0]), 3.0), np.array([0.0, 0.75, 1.0]), atol=1e-12)


@pytest.mark.parametrize("sampling", ["uniform", "logit_normal"])
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_sample_training_time(sampling, shift):
    objective = kd.diffusion.RectifiedFlow(sampling, logit_mean=0.5, logit_std=0.8, shift=shift)
    t = to_numpy(objective.sample_training_time(20000, keras.random.SeedGenerator(0)))
    assert t.dtype == np.float32 and t.shape == (20000,) and t.min() >= 0 and t.max() <= 1
    unshifted = t / (shift - (shift - 1) * t)  # the inverse of the shift
    if sampling == "uniform":
        assert abs(unshifted.mean() - 0.5) < 0.01 and abs(unshifted.std() - 12**-0.5) < 0.01
    else:
        logits = np.log(unshifted / (1 - unshifted))
        assert abs(logits.mean() - 0.5) < 0.03 and abs(logits.std() - 0.8) < 0.03


def test_config_round_trip():
    objective = kd.diffusion.RectifiedFlow("logit_normal", 0.2, 1.5, 3.0)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(objective))
    assert isinstance(restored, kd.diffusion.RectifiedFlow) and restored.get_config() == objective.get_config()


@pytest.mark.parametrize("kwargs,message", [
    ({"timestep_sampling": "lognorm"}, "Unknown timestep_sampling 'lognorm'.*'uniform', 'logit_normal'"),
    ({"shift": 0.0}, "shift must be a positive number"),
    ({"logit_std": -1.0}, "logit_std must be a positive number"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kd.diffusion.RectifiedFlow(**kwargs)


@pytest.mark.parametrize("axes", ["channels", "sample"])
def test_velocity_direction_loss(axes):
    """LightningDiT's term: MSE + w (1 - cos(prediction, velocity)), the cosine per pixel over channels or per
    sample; it vanishes for a prediction along the velocity, whatever its length, and is finite at 0."""
    rng = np.random.default_rng(2)
    x0, noise = rng.uniform(-1, 1, (3, 4, 4, 2)).astype("float32"), rng.standard_normal((3, 4, 4, 2)).astype("float32")
    t = np.array([0.1, 0.5, 0.9], "float32")
    x_t, velocity = noise * t[:, None, None, None], noise - x0
    plain = kd.diffusion.RectifiedFlow()
    objective = kd.diffusion.RectifiedFlow(direction_weight=0.5, direction_axes=axes)
    prediction = rng.standard_normal(x0.shape).astype("float32")
    a, b = (prediction, velocity) if axes == "channels" else (prediction.reshape(3, -1), velocity.reshape(3, -1))
    norm_b = np.linalg.norm(b, axis=-1)
    cosine = (a * b).sum(-1) / np.maximum(np.linalg.norm(a, axis=-1), 0.1 * norm_b) / norm_b  # |a| floored
    expected = to_numpy(plain.loss(prediction, x0, noise, t, x_t)) + 0.5 * (1 - cosine).reshape(3, -1).mean(-1)
    assert_close(objective.loss(prediction, x0, noise, t, x_t), expected, atol=1e-5)
    scaled = 3.0 * velocity  # same direction: only the squared error remains
    assert_close(objective.loss(scaled, x0, noise, t, x_t), plain.loss(scaled, x0, noise, t, x_t), atol=1e-5)
    zero = np.zeros_like(prediction)
    grad = to_numpy(gradient(lambda p: objective.loss(p, x0, noise, t, x_t), zero))
    plain_grad = to_numpy(gradient(lambda p: plain.loss(p, x0, noise, t, x_t), zero))
    # A zero prediction (a zero-initialised output layer) must get a gradient of the squared error's order, not
    # the exact cosine's ~1e8 times larger one, which would wreck Adam's second moments at the first step.
    assert np.all(np.isfinite(grad)) and np.linalg.norm(grad) < 20 * np.linalg.norm(plain_grad)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(objective))
    assert restored.get_config() == objective.get_config() and restored.direction_axes == axes


@pytest.mark.parametrize("kwargs,message", [
    ({"direction_weight": -1.0}, "direction_weight must be a number >= 0"),
    ({"direction_axes": "pixels"}, "Unknown direction_axes 'pixels'"),
])
def test_bad_direction_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kd.diffusion.RectifiedFlow(**kwargs)
