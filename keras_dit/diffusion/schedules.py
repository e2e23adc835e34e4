"""Noise schedules of Gaussian diffusion, as float64 NumPy tables.

Tables are computed once in float64 and cast to float32 only where a tensor needs them, so that
``alphas_cumprod`` near ``t = T - 1`` (about 4e-5 for DiT's schedule) keeps its precision.
"""

import math

import numpy as np

from keras_dit.validation import check_choice, check_int

SCHEDULES = ("linear", "scaled_linear", "cosine")


def beta_schedule(name, num_train_timesteps=1000):
    """The (T,) float64 betas of a named schedule.

    - ``"linear"``: DiT's (and DDPM's) ``linspace(1e-4, 0.02)``, both ends scaled by ``1000 / T`` so that any
      ``T`` covers the same noise range.
    - ``"scaled_linear"``: Stable Diffusion's, linear in ``sqrt(beta)`` from ``0.00085`` to ``0.012``
      (diffusers' ``scaled_linear`` with those ends).
    - ``"cosine"``: Nichol & Dhariwal's ``alpha_bar(s) = cos((s + 0.008) / 1.008 * pi / 2) ** 2``, betas capped
      at 0.999 (diffusers' ``squaredcos_cap_v2``).
    """
    check_choice("beta schedule", name, SCHEDULES)
    steps = check_int("num_train_timesteps", num_train_timesteps, 2, hint="DiT uses 1000")
    if name == "linear":
        scale = 1000.0 / steps
        return np.linspace(scale * 1e-4, scale * 0.02, steps, dtype=np.float64)
    if name == "scaled_linear":
        return np.linspace(0.00085**0.5, 0.012**0.5, steps, dtype=np.float64) ** 2

    def alpha_bar(s):
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    return np.array(
        [min(1.0 - alpha_bar((i + 1) / steps) / alpha_bar(i / steps), 0.999) for i in range(steps)],
        dtype=np.float64,
    )
