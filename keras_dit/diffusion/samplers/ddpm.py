"""DDPM ancestral sampling (Ho et al. 2020), with fixed or learned (Nichol & Dhariwal 2021, DiT) variance."""

import math

import keras
from keras import ops

from keras_dit.diffusion.gaussian import GaussianDiffusion
from keras_dit.diffusion.samplers.base import GaussianSampler
from keras_dit.diffusion.schedules import check_choice

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

    def _sample(self, call_model, x, num_steps, objective, seed_generator):
        if self.variance == "learned" and not objective.learn_sigma:
            raise ValueError(
                "DDPM(variance='learned') needs an objective with learn_sigma=True (a backbone that predicts its "
                "variance); use variance='small' or 'large' for this model."
            )
        return super()._sample(call_model, x, num_steps, objective, seed_generator)

    def _step(self, x, x0, eps, variance_values, a_t, a_next, last, seed_generator):
        beta = 1.0 - a_t / a_next
        mean = (a_next**0.5 * beta / (1.0 - a_t)) * x0 + ((1.0 - beta) ** 0.5 * (1.0 - a_next) / (1.0 - a_t)) * x
        if last:
            return mean
        posterior_variance = max((1.0 - a_next) / (1.0 - a_t) * beta, 1e-20)
        variance = self.variance or ("small" if variance_values is None else "learned")
        if variance == "small":
            std = posterior_variance**0.5
        elif variance == "large":
            std = beta**0.5
        else:
            log_variance = GaussianDiffusion.interpolate_log_variance(
                variance_values, math.log(posterior_variance), math.log(beta)
            )
            std = ops.exp(0.5 * log_variance)
        return mean + std * self.noise_like(x, seed_generator)

    def get_config(self):
        return {"variance": self.variance, **super().get_config()}

