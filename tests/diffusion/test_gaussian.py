"""GaussianDiffusion: forward process and targets against diffusers, conversions, min-SNR, DiT's hybrid loss."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_dit as kd
from tests.diffusion.reference import dit_training_loss
from tests.helpers import assert_close, gradient, to_numpy, to_torch

diffusers = pytest.importorskip("diffusers")

T_VALUES = np.array([0, 1, 2, 37, 500, 998, 999], "float32")


def random_batch(shape=(7, 4, 4, 3), seed=0):
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-1, 1, shape).astype("float32")
    x0[0, 0, 0] = [-1.0, 1.0, 0.0]  # the edge bins of the discretised likelihood
    return x0, rng.standard_normal(shape).astype("float32")


def test_add_noise_and_velocity_match_diffusers():
    objective = kd.diffusion.GaussianDiffusion(prediction="v")
    peer = diffusers.DDPMScheduler()
    x0, noise = random_batch()
    timesteps = to_torch(T_VALUES).long()
    assert_close(objective.add_noise(x0, noise, T_VALUES), peer.add_noise(to_torch(x0), to_torch(noise), timesteps))
    assert_close(objective.target(x0, noise, T_VALUES), peer.get_velocity(to_torch(x0), to_torch(noise), timesteps))


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_prediction_conversions_round_trip(prediction):
    objective = kd.diffusion.GaussianDiffusion(prediction=prediction)
    x0, noise = random_batch()
    t = np.array([3, 100, 400, 600, 800, 900, 990], "float32")  # well conditioned for every prediction type
    x_t = objective.add_noise(x0, noise, t)
    signal = ops.convert_to_tensor(np.sqrt(objective.alphas_cumprod[t.astype(int)])[:, None, None, None], "float32")
    noise_level = ops.convert_to_tensor(
        np.sqrt(1 - objective.alphas_cumprod[t.astype(int)])[:, None, None, None], "float32"
    )
    x0_back, eps_back = objective.to_x0_eps(objective.target(x0, noise, t), x_t, signal, noise_level)
    assert_close(x0_back, x0, atol=1e-4, what="x0")
    assert_close(eps_back, noise, atol=1e-4, what="eps")


@pytest.mark.parametrize("prediction", ["eps", "v", "x0"])
def test_min_snr_weights(prediction):
    x0, noise = random_batch()
    plain = kd.diffusion.GaussianDiffusion(prediction=prediction)
    weighted = kd.diffusion.GaussianDiffusion(prediction=prediction, min_snr_gamma=5.0)
    output = np.random.default_rng(1).standard_normal(x0.shape).astype("float32")
    x_t = plain.add_noise(x0, noise, T_VALUES)
    ratio = to_numpy(weighted.loss(output, x0, noise, T_VALUES, x_t)) / to_numpy(
        plain.loss(output, x0, noise, T_VALUES, x_t)
    )
    alphas_cumprod = plain.alphas_cumprod[T_VALUES.astype(int)]  # (the table itself: test_schedules)
    snr = alphas_cumprod / (1 - alphas_cumprod)
    expected = np.minimum(snr, 5.0) / {"eps": snr, "v": snr + 1, "x0": np.ones_like(snr)}[prediction]
    np.testing.assert_allclose(ratio, expected, rtol=1e-4)


@pytest.mark.parametrize("prediction", ["eps", "x0"])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_hybrid_loss_matches_dit(prediction, schedule):
    objective = kd.diffusion.GaussianDiffusion(schedule, prediction, learn_sigma=True)
    x0, noise = random_batch()
    rng = np.random.default_rng(2)
    output = np.concatenate(
        [0.5 * rng.standard_normal(x0.shape), rng.uniform(-1, 1, x0.shape)], axis=-1
    ).astype("float32")
    # A prediction near the truth (as in training) keeps the t = 0 likelihood out of the tails, where float32's
    # 1 + tanh(z) of the CDF approximation rounds to 0 (in DiT too) long before float64's does.
    output[..., :3] = (noise if prediction == "eps" else x0) + 0.003 * output[..., :3]
    x_t = objective.add_noise(x0, noise, T_VALUES)
    ours = objective.loss(output, x0, noise, T_VALUES, x_t)
    expected = dit_training_loss(output, x0, noise, T_VALUES, objective.betas, prediction)
    assert_close(ours, expected, atol=1e-4, rtol=1e-4, what="hybrid loss")


def test_hybrid_loss_stops_the_mean_gradient():
    objective = kd.diffusion.GaussianDiffusion(learn_sigma=True)
    plain = kd.diffusion.GaussianDiffusion()
    x0, noise = random_batch()
    output = np.random.default_rng(3).uniform(-1, 1, x0.shape[:-1] + (6,)).astype("float32")
    x_t = objective.add_noise(x0, noise, T_VALUES)
    grad = to_numpy(gradient(lambda o: objective.loss(o, x0, noise, T_VALUES, x_t), output))
    mse_grad = to_numpy(gradient(lambda o: plain.loss(o, x0, noise, T_VALUES, x_t), output[..., :3]))
    assert_close(grad[..., :3], mse_grad, atol=1e-6, what="mean-channel gradient (MSE only)")
    assert np.abs(grad[..., 3:]).min(axis=(1, 2, 3)).max() > 0, "no gradient reaches the variance channels"


def test_sample_training_time():
    objective = kd.diffusion.GaussianDiffusion(num_train_timesteps=50)
    t = objective.sample_training_time(4096, keras.random.SeedGenerator(0))
    values = to_numpy(t)
    assert values.dtype == np.float32 and values.shape == (4096,)
    assert np.all(values == np.round(values)) and values.min() == 0 and values.max() == 49
    again = objective.sample_training_time(4096, keras.random.SeedGenerator(0))
    np.testing.assert_array_equal(to_numpy(again), values)


def test_prediction_channels_and_model_time():
    assert kd.diffusion.GaussianDiffusion(learn_sigma=True).prediction_channels(4) == 8
    assert kd.diffusion.GaussianDiffusion().prediction_channels(4) == 4
    t = ops.convert_to_tensor(T_VALUES)
    assert_close(kd.diffusion.GaussianDiffusion().model_time(t), T_VALUES, atol=0.0)


def test_config_round_trip():
    objective = kd.diffusion.GaussianDiffusion("cosine", "v", 500, min_snr_gamma=5.0, learn_sigma=True)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(objective))
    assert isinstance(restored, kd.diffusion.GaussianDiffusion) and restored.get_config() == objective.get_config()
    np.testing.assert_array_equal(restored.alphas_cumprod, objective.alphas_cumprod)


@pytest.mark.parametrize("kwargs,message", [
    ({"prediction": "epsilon"}, "Unknown prediction 'epsilon'.*'eps', 'v', 'x0'"),
    ({"schedule": "squaredcos"}, "Unknown beta schedule 'squaredcos'.*'linear', 'scaled_linear', 'cosine'"),
    ({"min_snr_gamma": 0}, "min_snr_gamma must be a positive number"),
    ({"num_train_timesteps": 0}, "num_train_timesteps must be an integer >= 2"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kd.diffusion.GaussianDiffusion(**kwargs)


def test_odd_learned_output_channels():
    objective = kd.diffusion.GaussianDiffusion(learn_sigma=True)
    x0, noise = random_batch()
    with pytest.raises(ValueError, match="learn_sigma=True needs an even number of output channels"):
        objective.loss(x0, x0, noise, T_VALUES, x0)
