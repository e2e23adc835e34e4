"""DDIM sampling (Song et al. 2021): deterministic for eta = 0, DDPM-like noise for eta = 1."""

import keras

from keras_dit.diffusion.samplers.base import GaussianSampler


@keras.saving.register_keras_serializable(package="keras_dit")
class DDIM(GaussianSampler):
    """x_next = sqrt(a_next) x0 + sqrt(1 - a_next - sigma^2) eps + sigma z, on spaced timesteps.

    ``sigma = eta * sqrt((1 - a_next) / (1 - a_t) * (1 - a_t / a_next))`` with ``a = alpha_bar``; eta = 1 gives
    the DDPM posterior with the small variance. Each step goes to the next spaced timestep (and the last to the
    data, alpha_bar = 1), as in DiT. diffusers' ``DDIMScheduler`` instead always steps ``T // n`` timesteps back,
    which is the same for ``"leading"`` spacing and for ``"trailing"`` when n divides T, but not for
    ``"linspace"``. Learned-variance channels, if any, are ignored.

    Args:
        eta: noise scale in [0, 1] (0 = deterministic ODE sampling).
        timestep_spacing, clip_x0: see ``GaussianSampler``.
    """

    def __init__(self, eta=0.0, timestep_spacing="linspace", clip_x0=None):
        super().__init__(timestep_spacing, clip_x0)
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or eta < 0:
            raise ValueError(f"DDIM eta must be a number >= 0 (0 = deterministic, 1 = DDPM-like), got {eta!r}.")
        self.eta = float(eta)
        self.stochastic = self.eta > 0

    def _step(self, x, x0, eps, variance_values, a_t, a_next, last, seed_generator):
        sigma = self.eta * ((1.0 - a_next) / (1.0 - a_t) * (1.0 - a_t / a_next)) ** 0.5
        x = a_next**0.5 * x0 + max(1.0 - a_next - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * self.noise_like(x, seed_generator)
        return x

    def get_config(self):
        return {"eta": self.eta, **super().get_config()}
