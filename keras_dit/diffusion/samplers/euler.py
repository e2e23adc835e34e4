"""Euler integration of a rectified flow's ODE (diffusers' ``FlowMatchEulerDiscreteScheduler``)."""

import keras

from keras_dit.diffusion.samplers.base import FlowSampler, predict


@keras.saving.register_keras_serializable(package="keras_dit")
class Euler(FlowSampler):
    """x_next = x + (t_next - t) v(x, t) on the grid ``flow_times``.

    ``time_grid="uniform"`` (default) equals diffusers' ``FlowMatchEulerDiscreteScheduler(shift=...)`` given
    ``set_timesteps(sigmas=linspace(1, 0, n + 1)[:-1])``; ``"diffusers"`` is that scheduler's own grid
    (``set_timesteps(n)``), whose model evaluations stop at t = shift(shift(1 / 1000)) before the last step
    to 0, and gives its trajectories.

    Args:
        time_grid, shift: see ``FlowGrid``.
    """

    def step(self, model_fn, x, coefficients, state, objective, noise=None):
        return x + coefficients["dt"] * predict(model_fn, x, coefficients["t"], objective), state
