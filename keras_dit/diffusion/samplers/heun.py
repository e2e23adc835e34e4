"""Heun's second-order integration of a rectified flow's ODE (Karras et al. 2022, Algorithm 1 without churn)."""

import keras

from keras_dit.diffusion.samplers.base import FlowSampler


@keras.saving.register_keras_serializable(package="keras_dit")
class Heun(FlowSampler):
    """An Euler predictor, then the trapezoid rule with the velocity at the predicted point.

    The last step (to t = 0) stays an Euler step, as in Karras et al.: 2 n - 1 model evaluations for n steps.
    The global error shrinks as the square of the step size.
    """

    def _step(self, call_model, x, t, t_next):
        velocity = call_model(x, t)
        x_euler = x + (t_next - t) * velocity
        if t_next == 0.0:
            return x_euler
        return x + (t_next - t) * 0.5 * (velocity + call_model(x_euler, t_next))
