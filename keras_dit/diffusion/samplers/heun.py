"""Heun's second-order integration of a rectified flow's ODE (Karras et al. 2022, Algorithm 1 without churn)."""

import keras

from keras_dit.diffusion.samplers.base import FlowSampler, branch, predict


@keras.saving.register_keras_serializable(package="keras_dit")
class Heun(FlowSampler):
    """An Euler predictor, then the trapezoid rule with the velocity at the predicted point.

    The last step (to t = 0) stays an Euler step, as in Karras et al. and diffusers'
    ``FlowMatchHeunDiscreteScheduler``: 2 n - 1 model evaluations for n steps. The global error shrinks as the
    square of the step size. ``time_grid="diffusers"`` is that scheduler's grid (see ``Euler``).

    Args:
        time_grid, shift: see ``FlowGrid``.
    """

    branch_coefficients = ("correct",)

    def _coefficients(self, num_steps, objective):
        tables = super()._coefficients(num_steps, objective)
        return {**tables, "correct": (tables["t_next"] > 0).astype("float64")}

    def step(self, model_fn, x, coefficients, state, objective, noise=None):
        c = coefficients
        velocity = predict(model_fn, x, c["t"], objective)
        x_euler = x + c["dt"] * velocity

        def trapezoid():
            return x + c["dt"] * 0.5 * (velocity + predict(model_fn, x_euler, c["t_next"], objective))

        return branch(c["correct"], trapezoid, lambda: x_euler), state
