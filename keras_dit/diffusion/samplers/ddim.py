"""DDIM sampling (Song et al. 2021): deterministic for eta = 0, DDPM-like noise for eta = 1."""

import keras
import numpy as np

from keras_dit.diffusion.samplers.base import GaussianSampler
from keras_dit.validation import check_choice, check_nonnegative

STEP_RULES = ("next", "stride")


@keras.saving.register_keras_serializable(package="keras_dit")
class DDIM(GaussianSampler):
    """x_next = sqrt(a_next) x0 + sqrt(1 - a_next - sigma^2) eps + sigma z, on spaced timesteps.

    ``sigma = eta * sqrt((1 - a_next) / (1 - a_t) * (1 - a_t / a_next))`` with ``a = alpha_bar``; eta = 1 gives
    the DDPM posterior with the small variance. Learned-variance channels, if any, are ignored.

    Where each step goes (``a_next``) is where keras_dit's defaults and diffusers' ``DDIMScheduler`` differ:

    - ``step_rule="next"`` (default, DiT's): to the next spaced timestep, so every step lands where the next
      model evaluation is. ``"stride"`` (diffusers'): ``t - T // n``, which is the same for ``"leading"``
      spacing and for ``"trailing"`` when n divides T, but lands between grid points otherwise (with
      ``"linspace"`` almost always).
    - ``set_alpha_to_one=True`` (default): the last step goes to the data (alpha_bar = 1). ``False`` (diffusers'
      option, set in Stable Diffusion's configs) ends at ``alphas_cumprod[0]``, one training step short of it.

    With ``step_rule="stride"`` and the same ``set_alpha_to_one``, trajectories equal diffusers' for every
    spacing and step count.

    Args:
        eta: noise scale in [0, 1] (0 = deterministic ODE sampling).
        timestep_spacing, clip_x0: see ``GaussianSampler``.
        step_rule: ``"next"`` or ``"stride"``, see above.
        set_alpha_to_one: see above.
    """

    def __init__(self, eta=0.0, timestep_spacing="linspace", clip_x0=None, step_rule="next", set_alpha_to_one=True):
        super().__init__(timestep_spacing, clip_x0)
        check_choice("DDIM step_rule", step_rule, STEP_RULES)
        if not isinstance(set_alpha_to_one, bool):
            raise ValueError(f"set_alpha_to_one must be True or False, got {set_alpha_to_one!r}.")
        self.eta = check_nonnegative("DDIM eta", eta, hint="0 = deterministic, 1 = DDPM-like")
        self.stochastic = self.eta > 0
        self.step_rule = step_rule
        self.set_alpha_to_one = set_alpha_to_one

    def _next_alphas_cumprod(self, steps, objective):
        table = objective.alphas_cumprod
        final = 1.0 if self.set_alpha_to_one else float(table[0])
        if self.step_rule == "next":
            return np.append(table[steps[1:]], final)
        previous = steps - objective.num_train_timesteps // len(steps)
        return np.where(previous >= 0, table[np.maximum(previous, 0)], final)

    def _update_coefficients(self, a_t, a_next, objective):
        sigma = self.eta * np.sqrt((1.0 - a_next) / (1.0 - a_t) * (1.0 - a_t / a_next))
        return {"x0": np.sqrt(a_next), "eps": np.sqrt(np.maximum(1.0 - a_next - sigma**2, 0.0)), "sigma": sigma}

    def _update(self, x, x0, eps, variance_values, c, noise):
        x = c["x0"] * x0 + c["eps"] * eps
        return x + c["sigma"] * self._step_noise(noise) if self.stochastic else x

    def get_config(self):
        return {"eta": self.eta, **super().get_config(), "step_rule": self.step_rule,
                "set_alpha_to_one": self.set_alpha_to_one}
