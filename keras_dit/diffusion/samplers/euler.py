"""Euler integration of a rectified flow's ODE (diffusers' ``FlowMatchEulerDiscreteScheduler``)."""

import keras

from keras_dit.diffusion.samplers.base import FlowSampler


@keras.saving.register_keras_serializable(package="keras_dit")
class Euler(FlowSampler):
    """x_next = x + (t_next - t) v(x, t) on the shifted grid ``flow_times(num_steps, objective.shift)``.

    The grid equals diffusers' ``FlowMatchEulerDiscreteScheduler(shift=...)`` given
    ``set_timesteps(sigmas=linspace(1, 0, n + 1)[:-1])``; its default grid instead stops the model
    evaluations at t = shift(1 / 1000).
    """

    def _step(self, call_model, x, t, t_next):
        return x + (t_next - t) * call_model(x, t)
