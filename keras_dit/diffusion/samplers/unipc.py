"""UniPC (Zhao et al. 2023): a multistep predictor with a corrector, diffusers' ``UniPCMultistepScheduler``."""

import keras
import numpy as np

from keras_dit.diffusion.samplers.multistep import MultistepSolver, combine


def _predictor_rhos(R, b):
    order = len(b)
    return np.zeros(0) if order == 1 else np.array([0.5]) if order == 2 else np.linalg.solve(R[:-1, :-1], b[:-1])


def _corrector_rhos(R, b):
    return np.array([0.5]) if len(b) == 1 else np.linalg.solve(R, b)


@keras.saving.register_keras_serializable(package="keras_dit")
class UniPC(MultistepSolver):
    """UniPC with data prediction (``predict_x0=True``) and B(h) = e^-h - 1 (``solver_type="bh2"``).

    Each step evaluates the model at x_i, first corrects x_i with that prediction (UniC, using x_{i-1} and the
    predictions of the steps before; not on the first step) and then predicts x_{i+1} from the corrected x_i
    (UniP): one model evaluation per step, order ``order + 1`` with the corrector. As in diffusers, the first
    steps warm up with lower orders and step i takes at most order n - i (diffusers' ``lower_order_final=True``),
    so the last step to the data is first order. UniPC gives good guided samples in 5 to 10 steps.

    Samples ``GaussianDiffusion`` and ``RectifiedFlow`` models (diffusers' ``use_flow_sigmas=True,
    prediction_type="flow_prediction"``; a flow grid starting at t = 1 starts at 1 - 1e-6, as diffusers does,
    so that every lambda is finite). Arguments: see ``MultistepSolver`` (all but ``lower_order_final``, which
    diffusers only supports as True when the last step goes to the data).

    Example:
    >>> model.generate(labels, sampler=kd.samplers.UniPC(), num_steps=10, guidance_scale=4.0)
    """

    diffusers_grid = "unipc"

    def __init__(self, order=2, timestep_spacing="linspace", time_grid="diffusers", shift=None):
        super().__init__(order, timestep_spacing, time_grid, shift)

    def grid(self, num_steps, objective):
        t, alpha, sigma = super().grid(num_steps, objective)
        if abs(alpha[0]) < 1e-6:  # a flow starting at t = 1: lambda would be -inf
            t = np.concatenate([[t[0] - 1e-6], t[1:]])
            return t, 1.0 - t, t
        return t, alpha, sigma

    def _orders(self, n):
        return [min(self.order, n - i, i + 1) for i in range(n)]

    def _weights(self, order, source, target, lam, rhos):
        """The step ``source -> target`` of ``order``: h phi_1(h), B(h), the ratios r_k of the earlier steps'
        lambdas (k = 1 ... order - 1) and the weights ``rhos(R, b)`` of their slopes."""
        h = lam[target] - lam[source]
        hh = -h
        h_phi_1 = b_h = np.expm1(hh)  # bh2's B(h)
        rks = np.array([(lam[source - k] - lam[source]) / h for k in range(1, order)] + [1.0])
        powers, b = [], []
        h_phi_k, factorial = h_phi_1 / hh - 1.0, 1
        for k in range(1, order + 1):
            powers.append(rks ** (k - 1))
            b.append(h_phi_k * factorial / b_h)
            factorial *= k + 1
            h_phi_k = h_phi_k / hh - 1.0 / factorial
        return h_phi_1, b_h, rks[:-1], rhos(np.array(powers), np.array(b))

    def _step_row(self, i, orders, alpha, sigma, lam):
        row = {"keep": float(i == 0), "c_x": 0.0, "c_new": 0.0, **{f"c{k}": 0.0 for k in range(1, self.order + 1)}}
        if i > 0:  # UniC on the step i - 1 -> i, with that step's order q and the new prediction m_i
            q = orders[i - 1]
            h_phi_1, b_h, rks, rhos = self._weights(q, i - 1, i, lam, _corrector_rhos)
            weight = alpha[i] * b_h
            row["c_x"] = sigma[i] / sigma[i - 1]
            row["c_new"] = -weight * rhos[-1]
            row["c1"] = -alpha[i] * h_phi_1 + weight * (rhos[-1] + np.sum(rhos[:-1] / rks))
            for k in range(1, q):
                row[f"c{k + 1}"] = -weight * rhos[k - 1] / rks[k - 1]
        p = orders[i]  # UniP on the step i -> i + 1
        h_phi_1, b_h, rks, rhos = self._weights(p, i, i + 1, lam, _predictor_rhos)
        weight = alpha[i + 1] * b_h
        row["p_x"] = sigma[i + 1] / sigma[i]
        row["p0"] = -alpha[i + 1] * h_phi_1 + (weight * np.sum(rhos / rks) if p > 1 else 0.0)
        for k in range(1, self.order):
            row[f"p{k}"] = -weight * rhos[k - 1] / rks[k - 1] if k < p else 0.0
        return row

    def _state_size(self):
        return self.order + 1  # x_{i-1}, then m_{i-1} ... m_{i-order}

    def step(self, model_fn, x, coefficients, state, objective, noise=None):
        c = coefficients
        x_previous, history = state[0], state[1:]
        x0 = self.data_prediction(model_fn, x, c, objective)
        corrector = [f"c{k}" for k in range(1, self.order + 1)]  # on m_{i-1}, m_{i-2}, ...
        x = c["keep"] * x + c["c_x"] * x_previous + c["c_new"] * x0 + combine(c, corrector, history)
        x_next = c["p_x"] * x + combine(c, [f"p{k}" for k in range(self.order)], (x0, *history[: self.order - 1]))
        return x_next, (x, x0, *history[:-1])

    def get_config(self):
        config = super().get_config()
        del config["lower_order_final"]
        return config
