"""DDPM ancestral sampling (Ho et al. 2020), with fixed or learned (Nichol & Dhariwal 2021, DiT) variance."""

import keras
import numpy as np
from keras import ops

from keras_dit.diffusion.gaussian import GaussianDiffusion
from keras_dit.diffusion.samplers.base import GaussianSampler
from keras_dit.validation import check_choice

VARIANCES = ("small", "large", "learned")


@keras.saving.register_keras_serializable(package="keras_dit")
class DDPM(GaussianSampler):
    """Ancestral sampling: x_next ~ q(x_next | x_t, x0 = predicted x0), on spaced timesteps.

    Each step uses the betas of the spaced schedule, ``beta = 1 - alpha_bar_t / alpha_bar_next``. The last step
    returns the posterior mean without noise (diffusers adds noise there when the last timestep is above 0,
    i.e. with ``"trailing"`` spacing; DDPM and DiT do not).

    Args:
        variance: ``"small"`` (the posterior variance), ``"large"`` (beta), ``"learned"`` (DiT's interpolation of
            the two log variances by the model's variance channels), or None: learned when the objective has
            ``learn_sigma``, else small.
        timestep_spacing, clip_x0: see ``GaussianSampler``.
    """

    stochastic = True

    def __init__(self, variance=None, timestep_spacing="linspace", clip_x0=None):
        super().__init__(timestep_spacing, clip_x0)
        if variance is not None:
            check_choice("DDPM variance", variance, VARIANCES)
        self.variance = variance

    def _update_coefficients(self, a_t, a_next, objective):
        if self.variance == "learned" and not objective.learn_sigma:
            raise ValueError(
                "DDPM(variance='learned') needs an objective with learn_sigma=True (a backbone that predicts its "
                "variance); use variance='small' or 'large' for this model."
            )
        beta = 1.0 - a_t / a_next
        small = np.maximum((1.0 - a_next) / (1.0 - a_t) * beta, 1e-20)
        return {
            "mean_x0": np.sqrt(a_next) * beta / (1.0 - a_t),
            "mean_x": np.sqrt(1.0 - beta) * (1.0 - a_next) / (1.0 - a_t),
            "std": np.sqrt(beta if self.variance == "large" else small),
            "log_small": np.log(small), "log_large": np.log(beta),
            "noisy": (np.arange(len(a_t)) < len(a_t) - 1).astype(np.float64),  # the last step returns the mean
        }

    def _update(self, x, x0, eps, variance_values, c, noise):
        mean = c["mean_x0"] * x0 + c["mean_x"] * x
        std = c["std"]
        if self.variance == "learned" or (self.variance is None and variance_values is not None):
            std = ops.exp(0.5 * GaussianDiffusion.interpolate_log_variance(
                variance_values, c["log_small"], c["log_large"]
            ))
        return mean + c["noisy"] * std * self._step_noise(noise)

    def get_config(self):
        return {"variance": self.variance, **super().get_config()}

