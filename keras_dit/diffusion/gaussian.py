"""Gaussian (DDPM) diffusion: x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps over T discrete steps."""

import math

import keras
import numpy as np
from keras import ops

from keras_dit.diffusion.likelihood import discretized_gaussian_log_likelihood, normal_kl
from keras_dit.diffusion.objective import Objective, broadcast_to_rank, per_sample_mean
from keras_dit.diffusion.schedules import SCHEDULES, beta_schedule
from keras_dit.validation import check_choice, check_positive

PREDICTIONS = ("eps", "v", "x0")


@keras.saving.register_keras_serializable(package="keras_dit")
class GaussianDiffusion(Objective):
    """The DDPM / DiT training objective.

    The backbone predicts ``eps`` (the noise), ``v = sqrt(a) eps - sqrt(1 - a) x0`` (Salimans & Ho) or ``x0``,
    with ``a = alpha_bar_t``; the loss is the mean squared error to that target, optionally weighted by
    min-SNR-gamma (Hang et al. 2023). With ``learn_sigma`` the backbone also outputs, after the prediction
    channels, values ``v`` in [-1, 1] that interpolate the log variance of each reverse step between the
    posterior variance and beta (Nichol & Dhariwal 2021), and DiT's hybrid loss adds the variational bound
    on that variance, with the gradient to the mean stopped.

    Args:
        schedule: beta schedule, ``"linear"`` (DiT's), ``"scaled_linear"`` or ``"cosine"`` (see
            ``schedules.beta_schedule``).
        prediction: ``"eps"``, ``"v"`` or ``"x0"``.
        num_train_timesteps: T, the number of diffusion steps.
        min_snr_gamma: if set (5 in the paper), weight the MSE by ``min(SNR, gamma)`` relative to the
            prediction's own SNR weighting.
        learn_sigma: the backbone also predicts the variance (DiT's ``learn_sigma``).
    """

    def __init__(
        self, schedule="linear", prediction="eps", num_train_timesteps=1000, min_snr_gamma=None, learn_sigma=False
    ):
        check_choice("beta schedule", schedule, SCHEDULES)
        check_choice("prediction", prediction, PREDICTIONS)
        self.schedule = schedule
        self.prediction = prediction
        self.min_snr_gamma = check_positive("min_snr_gamma", min_snr_gamma, allow_none=True, hint="try 5.0")
        self.learn_sigma = bool(learn_sigma)

        # Float64 tables (T,), indexed by integer timestep.
        self.betas = beta_schedule(schedule, num_train_timesteps)
        self.num_train_timesteps = len(self.betas)
        self.alphas_cumprod = np.cumprod(1.0 - self.betas)
        alphas_cumprod_prev = np.append(1.0, self.alphas_cumprod[:-1])
        posterior_variance = self.betas * (1.0 - alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        snr = self.alphas_cumprod / (1.0 - self.alphas_cumprod)
        if self.min_snr_gamma is None:
            weight = np.ones_like(snr)
        else:
            clipped = np.minimum(snr, self.min_snr_gamma)
            weight = {"eps": clipped / snr, "v": clipped / (snr + 1.0), "x0": clipped}[prediction]
        self._tables = {
            "signal": np.sqrt(self.alphas_cumprod),
            "noise": np.sqrt(1.0 - self.alphas_cumprod),
            "snr_weight": weight,
            "log_beta": np.log(self.betas),
            # The posterior variance is 0 at t = 0; like the reference, its log takes the t = 1 value there.
            "posterior_log_variance": np.log(np.append(posterior_variance[1], posterior_variance[1:])),
            "posterior_x0_coef": self.betas * np.sqrt(alphas_cumprod_prev) / (1.0 - self.alphas_cumprod),
            "posterior_xt_coef": (1.0 - alphas_cumprod_prev) * np.sqrt(1.0 - self.betas) / (1.0 - self.alphas_cumprod),
        }

    def _lookup(self, name, t, x):
        """Table ``name`` at integer-valued times ``t`` (B,), shaped (B, 1, ..., 1) to broadcast against ``x``."""
        table = ops.convert_to_tensor(self._tables[name].astype(np.float32))
        return broadcast_to_rank(ops.take(table, ops.cast(t, "int32"), axis=0), x)

    def sample_training_time(self, batch_size, seed_generator):
        """(B,) float32 integer-valued timesteps drawn uniformly from [0, T)."""
        t = keras.random.randint((batch_size,), 0, self.num_train_timesteps, seed=seed_generator)
        return ops.cast(t, "float32")

    def add_noise(self, x0, noise, t):
        """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise, for (B,) timesteps ``t``."""
        x0, noise = ops.convert_to_tensor(x0), ops.convert_to_tensor(noise)
        return self._lookup("signal", t, x0) * x0 + self._lookup("noise", t, x0) * noise

    def from_x0_eps(self, x0, eps, signal, noise_level):
        """The prediction target for clean data ``x0`` and noise ``eps`` (``signal = sqrt(alpha_bar)``,
        ``noise_level = sqrt(1 - alpha_bar)``, floats or tensors broadcastable to ``x0``)."""
        if self.prediction == "eps":
            return eps
        if self.prediction == "v":
            return signal * eps - noise_level * x0
        return x0

    def to_x0_eps(self, prediction, x_t, signal, noise_level):
        """Invert ``from_x0_eps``: the (x0, eps) that a prediction at ``x_t`` implies."""
        if self.prediction == "eps":
            return (x_t - noise_level * prediction) / signal, prediction
        if self.prediction == "v":
            return signal * x_t - noise_level * prediction, signal * prediction + noise_level * x_t
        return prediction, (x_t - signal * prediction) / noise_level

    def target(self, x0, noise, t):
        """What the backbone should predict at timesteps ``t`` (B,)."""
        x0, noise = ops.convert_to_tensor(x0), ops.convert_to_tensor(noise)
        return self.from_x0_eps(x0, noise, self._lookup("signal", t, x0), self._lookup("noise", t, x0))

    def split_prediction(self, output):
        """Backbone output -> (prediction, variance values or None), splitting the last (channel) axis."""
        if not self.learn_sigma:
            return output, None
        channels = output.shape[-1]
        if channels is None or channels % 2:
            raise ValueError(
                f"learn_sigma=True needs an even number of output channels (prediction then variance), "
                f"got output shape {tuple(output.shape)}; build the backbone with learn_sigma=True."
            )
        return output[..., : channels // 2], output[..., channels // 2 :]

    def loss(self, prediction, x0, noise, t, x_t):
        """(B,) per-sample loss: (weighted) MSE to the target, plus the variational bound with ``learn_sigma``."""
        prediction = ops.cast(prediction, "float32")
        x0, noise, x_t = (ops.convert_to_tensor(v, "float32") for v in (x0, noise, x_t))
        mean_output, variance_values = self.split_prediction(prediction)
        mse = per_sample_mean(ops.square(self.target(x0, noise, t) - mean_output))
        if self.min_snr_gamma is not None:
            mse = mse * self._lookup("snr_weight", t, mse)  # (B,)
        if variance_values is None:
            return mse
        return mse + self.variational_bound(ops.stop_gradient(mean_output), variance_values, x0, x_t, t)

    def variational_bound(self, mean_output, variance_values, x0, x_t, t):
        """(B,) bits per dimension of the step's bound term: the KL between the true posterior q(x_{t-1} | x_t, x0)
        and the model's p(x_{t-1} | x_t), or the decoder's negative log-likelihood of ``x0`` at t = 0."""
        x0_pred, _ = self.to_x0_eps(mean_output, x_t, self._lookup("signal", t, x_t), self._lookup("noise", t, x_t))
        coef_x0, coef_xt = self._lookup("posterior_x0_coef", t, x_t), self._lookup("posterior_xt_coef", t, x_t)
        true_mean = coef_x0 * x0 + coef_xt * x_t
        model_mean = coef_x0 * x0_pred + coef_xt * x_t
        true_log_variance = self._lookup("posterior_log_variance", t, x_t)
        model_log_variance = self.interpolate_log_variance(
            variance_values, true_log_variance, self._lookup("log_beta", t, x_t)
        )
        kl = per_sample_mean(normal_kl(true_mean, true_log_variance, model_mean, model_log_variance))
        nll = -per_sample_mean(discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_variance))
        return ops.where(ops.cast(t, "int32") == 0, nll, kl) / math.log(2.0)

    @staticmethod
    def interpolate_log_variance(variance_values, min_log, max_log):
        """DiT's learned variance: values in [-1, 1] map linearly to log variances in [min_log, max_log]."""
        fraction = (variance_values + 1.0) / 2.0
        return fraction * max_log + (1.0 - fraction) * min_log

    def get_config(self):
        return {
            "schedule": self.schedule,
            "prediction": self.prediction,
            "num_train_timesteps": self.num_train_timesteps,
            "min_snr_gamma": self.min_snr_gamma,
            "learn_sigma": self.learn_sigma,
        }
