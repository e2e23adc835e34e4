"""Samplers of ``DiscreteCTMC`` models: tau-leaping and a first-jump Euler scheme, with predictor-corrector steps.

Both start from the stationary distribution (drawn from the ``noise`` by the inverse CDF), step the reverse
CTMC from t = 1 down to ``min_t`` on ``num_steps`` equal steps with the model's reverse rates frozen over each
step, and end with the most likely x0 under ``p(x0 | x, min_t)``. They differ in the jump of a step of length h:

- ``TauLeaping`` (Campbell et al. 2022): every (dimension, target state) pair fires a Poisson(h rate) number of
  times; the jumps of a dimension add up as offsets ``s - x`` and the result is clipped to [0, S) (for ordinal
  states, as the reference).
- ``DiscreteEuler``: each dimension jumps at most once, with probability ``1 - exp(-h total rate)``, to a
  state drawn in proportion to the rates: exact for a CTMC whose rates are constant over the step, and right
  for unordered (``uniform``) states too.

Predictor-corrector: once ``t <= corrector_entry_time``, each step is followed by ``num_corrector_steps``
jumps of length ``corrector_step_size_multiplier * h`` with rate forward + reverse, a CTMC that leaves
``q_t`` invariant. ``model_fn(x, t)`` gets float32 states (B, H, W, C) and (B,) times and returns logits
(B, H, W, C, S); ``kd.diffusion.guided_model_fn`` makes it classifier-free guided (guidance on the logits).
"""

import keras
import numpy as np
from keras import ops

from keras_dit.diffusion.discrete.objective import DiscreteCTMC, inverse_cdf
from keras_dit.diffusion.samplers.base import Sampler, make_seed_generator
from keras_dit.validation import check_int, check_positive, check_range


class DiscreteSampler(Sampler):
    """Base class of the ``DiscreteCTMC`` samplers; subclasses implement ``_jump``.

    Args:
        min_t: the last model time (0.01 in the reference); the final x0 is the argmax at ``min_t``.
        num_corrector_steps: corrector jumps after each predictor step below ``corrector_entry_time`` (0 = none).
        corrector_step_size_multiplier: corrector step length relative to the predictor's h.
        corrector_entry_time: the time below which correctors run.
    """

    objective_type = DiscreteCTMC
    stochastic = True

    def __init__(self, min_t=0.01, num_corrector_steps=0, corrector_step_size_multiplier=1.5,
                 corrector_entry_time=0.1):
        self.min_t = check_range("min_t", min_t, 0, 1, "[)")
        self.num_corrector_steps = check_int("num_corrector_steps", num_corrector_steps, minimum=0)
        self.corrector_step_size_multiplier = check_positive("corrector_step_size_multiplier",
                                                             corrector_step_size_multiplier)
        self.corrector_entry_time = check_range("corrector_entry_time", corrector_entry_time, 0, 1)

    def sample(self, model_fn, noise, num_steps, objective, seed=None):
        """Sample images in [-1, 1] (B, H, W, C) (states ``s`` map to ``2 s / (S - 1) - 1``).

        Args:
            model_fn: ``(x, t) -> logits``: x float32 states (B, H, W, C), t (B,) in [0, 1]; logits (B, H, W, C, S).
            noise: (B, H, W, C) standard normal values; they pick the initial states.
            num_steps: predictor steps (model evaluations, not counting correctors and the final one), >= 1.
            objective: the ``DiscreteCTMC`` the model was trained with.
            seed: int or ``keras.random.SeedGenerator`` of the jumps.
        """
        self._check_objective(objective)
        num_steps = self._check_num_steps(num_steps, objective)
        noise = ops.convert_to_tensor(noise, "float32")
        if len(noise.shape) < 2:
            raise ValueError(f"noise must be (B, H, W, C) (rank >= 2), got shape {tuple(noise.shape)}.")
        seed_generator = make_seed_generator(seed)
        S = objective.num_states

        def logits_at(x, t):
            out = ops.cast(model_fn(x, ops.full((ops.shape(x)[0],), t, dtype="float32")), "float32")
            if tuple(out.shape) != tuple(x.shape) + (S,):
                raise ValueError(
                    f"model_fn returned shape {tuple(out.shape)} for states of shape {tuple(x.shape)}; expected "
                    f"logits {tuple(x.shape) + (S,)} (num_states={S})."
                )
            return out

        def rates_at(x, t):
            t_batch = ops.full((ops.shape(x)[0],), t, dtype="float32")
            return objective.reverse_rates(logits_at(x, t), x, t_batch)

        x = ops.cast(objective.initial_states(noise), "float32")
        times = np.linspace(1.0, self.min_t, num_steps + 1)
        for t, t_next in zip(times[:-1], times[1:]):
            h = float(t - t_next)
            x = self._jump(x, rates_at(x, float(t)), h, S, seed_generator)
            if t_next <= self.corrector_entry_time:
                for _ in range(self.num_corrector_steps):
                    t_batch = ops.full((ops.shape(x)[0],), float(t_next), dtype="float32")
                    rates = rates_at(x, float(t_next)) + objective.forward_rates_from(x, t_batch)
                    x = self._jump(x, rates, self.corrector_step_size_multiplier * h, S, seed_generator)
        x0 = ops.argmax(logits_at(x, float(self.min_t)), axis=-1)
        return objective.from_states(x0)

    def _jump(self, x, rates, h, num_states, seed_generator):
        """States after a step of length ``h`` with (B, H, W, C, S) rates (0 at the current state)."""
        raise NotImplementedError

    def get_config(self):
        return {
            "min_t": self.min_t, "num_corrector_steps": self.num_corrector_steps,
            "corrector_step_size_multiplier": self.corrector_step_size_multiplier,
            "corrector_entry_time": self.corrector_entry_time,
        }


@keras.saving.register_keras_serializable(package="keras_dit")
class TauLeaping(DiscreteSampler):
    """Tau-leaping: Poisson numbers of every jump over the step, their offsets summed, clipped to [0, S).

    Args:
        max_jumps: Poisson counts are drawn by the inverse CDF over 0..max_jumps (larger counts are capped).
        **kwargs: ``DiscreteSampler`` options (``min_t``, corrector settings).
    """

    def __init__(self, max_jumps=16, **kwargs):
        super().__init__(**kwargs)
        self.max_jumps = check_int("max_jumps", max_jumps)

    def _jump(self, x, rates, h, num_states, seed_generator):
        mean = rates * h  # (B, H, W, C, S)
        u = keras.random.uniform(ops.shape(mean), seed=seed_generator)
        term = ops.exp(-mean)  # P(N = 0)
        cdf = term
        counts = ops.zeros_like(mean)
        for k in range(1, self.max_jumps + 1):
            counts = counts + ops.cast(u > cdf, "float32")
            term = term * mean / k
            cdf = cdf + term
        offsets = ops.arange(num_states, dtype="float32") - x[..., None]  # s - x
        return ops.clip(x + ops.sum(counts * offsets, axis=-1), 0.0, num_states - 1.0)

    def get_config(self):
        return {**super().get_config(), "max_jumps": self.max_jumps}


@keras.saving.register_keras_serializable(package="keras_dit")
class DiscreteEuler(DiscreteSampler):
    """At most one jump per dimension per step: leave with probability ``1 - exp(-h total)``, target ~ rates."""

    def _jump(self, x, rates, h, num_states, seed_generator):
        total = ops.sum(rates, axis=-1, keepdims=True)
        leave = 1.0 - ops.exp(-h * total)
        probs = leave * rates / ops.maximum(total, 1e-20) + (1.0 - leave) * ops.one_hot(
            ops.cast(x, "int32"), num_states
        )
        u = keras.random.uniform(ops.shape(x), minval=1e-7, maxval=1.0 - 1e-7, seed=seed_generator)
        return ops.cast(inverse_cdf(probs, u), "float32")


DISCRETE_SAMPLERS = {"tau_leaping": TauLeaping, "euler": DiscreteEuler}
