"""What the multistep solvers (DPM-Solver++, UniPC) share: one grid of (alpha, sigma) for both objectives.

Both solvers integrate the diffusion ODE in the log-SNR ``lambda = log(alpha / sigma)`` from the model's data
prediction x0 at each step and the predictions of the steps before, held in the sampler's state. The grid is
n + 1 points ``x_t = alpha x0 + sigma eps``: ``GaussianDiffusion``'s ``(sqrt(alpha_bar), sqrt(1 - alpha_bar))``
at diffusers' multistep timesteps (``solver_timesteps``), or a flow's ``(1 - t, t)`` on its time grid, then the
data ``(1, 0)``. Each step's update is linear in ``x`` and the predictions, so its coefficients are float64
tables (``coefficients``) and the step is a few multiply-adds, the same inside a compiled loop.
"""

import numpy as np
from keras import ops

from keras_dit.diffusion.flow import RectifiedFlow
from keras_dit.diffusion.gaussian import GaussianDiffusion
from keras_dit.diffusion.samplers.base import (
    TIMESTEP_SPACINGS, FlowGrid, Sampler, predict, solver_timesteps,
)
from keras_dit.validation import check_choice, check_int


class MultistepSolver(FlowGrid, Sampler):
    """Base class of ``DPMSolverMultistep`` and ``UniPC``.

    Args:
        order: the solver order (1 to ``max_order``); the first steps use lower orders until enough
            predictions exist, and ``num_steps`` must be at least ``order``.
        timestep_spacing: for ``GaussianDiffusion``: ``"linspace"``, ``"leading"`` or ``"trailing"``, spaced as
            diffusers' multistep schedulers space them (``solver_timesteps``).
        time_grid: for ``RectifiedFlow``: ``"diffusers"`` (default: the grid diffusers' scheduler uses with
            ``use_flow_sigmas=True``, see ``flow_times``) or ``"uniform"``.
        shift: for ``RectifiedFlow``: the time shift at inference; ``None`` takes the objective's.
        lower_order_final: lower the order of the last steps, as diffusers does (see the subclasses).
    """

    objective_type = (GaussianDiffusion, RectifiedFlow)
    max_order = 3

    def __init__(self, order=2, timestep_spacing="linspace", time_grid="diffusers", shift=None,
                 lower_order_final=True):
        self.order = check_int(f"{type(self).__name__} order", order, maximum=self.max_order,
                               hint="2 is the usual choice")
        check_choice("timestep_spacing", timestep_spacing, TIMESTEP_SPACINGS)
        self._init_flow_grid(time_grid, shift)
        self.timestep_spacing = timestep_spacing
        self.lower_order_final = bool(lower_order_final)

    def grid(self, num_steps, objective):
        """(t, alpha, sigma): (n + 1,) float64 each; ``t`` the model time, the last point the data (1, 0)."""
        if isinstance(objective, RectifiedFlow):
            t = self.flow_times(num_steps, objective)
            return t, 1.0 - t, t
        if self.shift is not None:
            raise ValueError(
                f"shift={self.shift} is a time shift for RectifiedFlow models; this model's objective is "
                f"{type(objective).__name__}. Leave shift=None."
            )
        steps = solver_timesteps(num_steps, objective.num_train_timesteps, self.timestep_spacing)
        a = objective.alphas_cumprod[steps]
        return (np.append(steps, 0).astype(np.float64), np.append(np.sqrt(a), 1.0),
                np.append(np.sqrt(1.0 - a), 0.0))

    def _coefficients(self, num_steps, objective):
        t, alpha, sigma = self.grid(num_steps, objective)
        with np.errstate(divide="ignore"):
            lam = np.log(alpha) - np.log(sigma)  # -inf at a flow's t = 1, +inf at the data
        tables = {"t": t[:-1], "alpha": alpha[:-1], "sigma": sigma[:-1]}
        orders = self._orders(num_steps)
        rows = [self._step_row(i, orders, alpha, sigma, lam) for i in range(num_steps)]
        return {**tables, **{key: np.array([row[key] for row in rows]) for key in rows[0]}}

    def _orders(self, num_steps):
        """The order of each step."""
        raise NotImplementedError

    def _step_row(self, i, orders, alpha, sigma, lam):
        """Step ``i``'s update coefficients (name -> float), from the steps' orders and the whole grid."""
        raise NotImplementedError

    def initial_state(self, x):
        return tuple(ops.zeros_like(x) for _ in range(self._state_size()))

    def _state_size(self):
        raise NotImplementedError

    def data_prediction(self, model_fn, x, coefficients, objective):
        """The model's prediction of x0 at ``x``, from its eps / v / x0 (Gaussian) or velocity (flow) output."""
        output = predict(model_fn, x, coefficients["t"], objective)
        if isinstance(objective, RectifiedFlow):
            return x - coefficients["sigma"] * output
        prediction, _ = objective.split_prediction(output)
        return objective.to_x0_eps(prediction, x, coefficients["alpha"], coefficients["sigma"])[0]

    def get_config(self):
        return {"order": self.order, "timestep_spacing": self.timestep_spacing, **self.flow_grid_config(),
                "lower_order_final": self.lower_order_final}


def combine(coefficients, names, tensors):
    """``sum_k coefficients[names[k]] * tensors[k]``."""
    total = coefficients[names[0]] * tensors[0]
    for name, tensor in zip(names[1:], tensors[1:]):
        total = total + coefficients[name] * tensor
    return total
