"""What every sampler shares: input checks, the seed, the noise hook and the time grids.

A sampler turns noise into data by calling ``model_fn(x, t)`` with ``t`` a (B,) float32 tensor in the
objective's native units (integer-valued timesteps for ``GaussianDiffusion``, t in [0, 1] for
``RectifiedFlow``) and getting back the raw backbone output (variance channels included). Step coefficients
are computed in float64 NumPy, one Python float per step, and applied to float32 tensors with ``keras.ops``.
"""

import keras
import numpy as np
from keras import ops

from keras_dit.diffusion.configurable import Configurable
from keras_dit.diffusion.flow import RectifiedFlow, shift_time
from keras_dit.diffusion.gaussian import GaussianDiffusion
from keras_dit.diffusion.schedules import check_choice

TIMESTEP_SPACINGS = ("leading", "trailing", "linspace")


def spaced_timesteps(num_steps, num_train_timesteps, spacing):
    """The ``num_steps`` integer timesteps a Gaussian sampler visits, descending, as diffusers spaces them.

    ``"linspace"``: rounded ``linspace(0, T - 1, n)`` (DiT's respacing: first step at T - 1, last at 0).
    ``"leading"``: ``0, T // n, 2 (T // n), ...`` (first step below T - 1). ``"trailing"``: ``T - 1`` down in
    strides of ``T / n`` (Lin et al. 2024; last step above 0).
    """
    check_choice("timestep_spacing", spacing, TIMESTEP_SPACINGS)
    n, total = num_steps, num_train_timesteps
    if spacing == "linspace":
        steps = np.linspace(0, total - 1, n).round()[::-1]
    elif spacing == "leading":
        steps = (np.arange(n) * (total // n))[::-1]
    else:
        # Float stride: for some (T, n) arange yields an extra value near 0 (-1 after the shift); drop it.
        steps = (np.round(np.arange(total, 0, -total / n)) - 1)[:n]
    return steps.astype(np.int64)


def flow_times(num_steps, shift):
    """The ``num_steps + 1`` times a flow sampler visits: ``linspace(1, 0)`` in unshifted time, then shifted."""
    return shift_time(np.linspace(1.0, 0.0, num_steps + 1, dtype=np.float64), shift)


def make_seed_generator(seed):
    """A ``SeedGenerator`` from an int, an existing generator, or None (seeded from the global seed)."""
    if isinstance(seed, keras.random.SeedGenerator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return keras.random.SeedGenerator(None if seed is None else int(seed))
    raise ValueError(f"seed must be an int, a keras.random.SeedGenerator or None, got {type(seed).__name__}.")


class Sampler(Configurable):
    """Base class (``from_config`` / ``repr`` from ``Configurable``). Subclasses set ``objective_type`` and
    implement ``_sample``.

    ``noise_like(x, seed_generator)`` draws every random normal a stochastic sampler adds; tests override it to
    feed the exact noise a reference implementation uses.
    """

    objective_type = None
    stochastic = False

    def sample(self, model_fn, noise, num_steps, objective, seed=None):
        """Integrate from ``noise`` (t = noise end) to data and return the final ``x`` (same shape as ``noise``).

        Args:
            model_fn: callable ``(x, t) -> prediction``; ``t`` is (B,) in the objective's native units.
            noise: (B, ...) initial noise, rank >= 2 (channels last).
            num_steps: number of steps (model evaluations for first-order samplers).
            objective: the ``GaussianDiffusion`` or ``RectifiedFlow`` the model was trained with.
            seed: int or ``keras.random.SeedGenerator`` for the noise of stochastic samplers.
        """
        self._check_objective(objective)
        num_steps = self._check_num_steps(num_steps, objective)
        noise = ops.convert_to_tensor(noise, "float32")
        if len(noise.shape) < 2:
            raise ValueError(
                f"noise must be a (B, ...) tensor of rank >= 2 (e.g. (B, H, W, C)), got shape {tuple(noise.shape)}."
            )
        seed_generator = make_seed_generator(seed) if self.stochastic else None

        def call_model(x, t):
            output = ops.cast(model_fn(x, ops.full((ops.shape(x)[0],), t, dtype="float32")), "float32")
            expected = objective.prediction_channels(x.shape[-1])
            if tuple(output.shape[:-1]) != tuple(x.shape[:-1]) or output.shape[-1] != expected:
                raise ValueError(
                    f"model_fn returned shape {tuple(output.shape)} for x of shape {tuple(x.shape)}; expected "
                    f"{tuple(x.shape[:-1]) + (expected,)} for {objective!r}."
                )
            return output

        return self._sample(call_model, noise, num_steps, objective, seed_generator)

    def noise_like(self, x, seed_generator):
        """A standard normal tensor shaped like ``x`` (the test hook: override to inject known noise)."""
        return keras.random.normal(ops.shape(x), dtype="float32", seed=seed_generator)

    def _sample(self, call_model, x, num_steps, objective, seed_generator):
        raise NotImplementedError

    def _check_objective(self, objective):
        if isinstance(objective, self.objective_type):
            return
        if isinstance(objective, GaussianDiffusion):
            hint = "use DDPM or DDIM for it"
        elif isinstance(objective, RectifiedFlow):
            hint = "use Euler or Heun for it"
        else:
            hint = "pass the objective the model was trained with"
        raise ValueError(
            f"{type(self).__name__} samples {self.objective_type.__name__} models, got {objective!r}; {hint}."
        )

    def _check_num_steps(self, num_steps, objective):
        limit = getattr(objective, "num_train_timesteps", None)
        valid = isinstance(num_steps, (int, np.integer)) and not isinstance(num_steps, bool)
        if not valid or num_steps < 1 or (limit is not None and num_steps > limit):
            bound = f" and <= num_train_timesteps={limit}" if limit is not None else ""
            raise ValueError(f"num_steps must be an integer >= 1{bound}, got {num_steps!r}.")
        return int(num_steps)

    def get_config(self):
        return {}


class GaussianSampler(Sampler):
    """A sampler for ``GaussianDiffusion``: walks the spaced timesteps, calling ``_step`` for each.

    Args:
        timestep_spacing: ``"linspace"`` (DiT's), ``"leading"`` or ``"trailing"``; see ``spaced_timesteps``.
        clip_x0: if set, clip the predicted x0 to [-clip_x0, clip_x0] (1.0 for pixel-space models on [-1, 1]);
            the implied noise is recomputed from the clipped x0.
    """

    objective_type = GaussianDiffusion

    def __init__(self, timestep_spacing="linspace", clip_x0=None):
        check_choice("timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        if clip_x0 is not None and not (isinstance(clip_x0, (int, float)) and clip_x0 > 0):
            raise ValueError(f"clip_x0 must be a positive number or None, got {clip_x0!r}.")
        self.timestep_spacing = timestep_spacing
        self.clip_x0 = None if clip_x0 is None else float(clip_x0)

    def _sample(self, call_model, x, num_steps, objective, seed_generator):
        steps = spaced_timesteps(num_steps, objective.num_train_timesteps, self.timestep_spacing)
        alphas_cumprod = objective.alphas_cumprod
        for i, t in enumerate(steps):
            # alpha_bar at this step and the next one; after the last step the data itself (alpha_bar = 1).
            a_t = float(alphas_cumprod[t])
            a_next = float(alphas_cumprod[steps[i + 1]]) if i + 1 < len(steps) else 1.0
            output = call_model(x, float(t))
            prediction, variance_values = objective.split_prediction(output)
            x0, eps = objective.to_x0_eps(prediction, x, a_t**0.5, (1.0 - a_t) ** 0.5)
            if self.clip_x0 is not None:
                x0 = ops.clip(x0, -self.clip_x0, self.clip_x0)
                eps = (x - a_t**0.5 * x0) / (1.0 - a_t) ** 0.5
            x = self._step(x, x0, eps, variance_values, a_t, a_next, i + 1 == len(steps), seed_generator)
        return x

    def _step(self, x, x0, eps, variance_values, a_t, a_next, last, seed_generator):
        """One step from alpha_bar ``a_t`` to ``a_next``, given the predicted ``x0`` and ``eps``."""
        raise NotImplementedError

    def get_config(self):
        return {"timestep_spacing": self.timestep_spacing, "clip_x0": self.clip_x0}


class FlowSampler(Sampler):
    """A sampler for ``RectifiedFlow``: integrates dx/dt = v(x, t) from t = 1 to 0 on ``flow_times``."""

    objective_type = RectifiedFlow

    def _sample(self, call_model, x, num_steps, objective, seed_generator):
        times = flow_times(num_steps, objective.shift)
        for i in range(num_steps):
            x = self._step(call_model, x, float(times[i]), float(times[i + 1]))
        return x

    def _step(self, call_model, x, t, t_next):
        raise NotImplementedError
