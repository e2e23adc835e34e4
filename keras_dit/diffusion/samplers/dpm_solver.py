"""DPM-Solver++ multistep (Lu et al. 2022): 2M and 3M, diffusers' ``DPMSolverMultistepScheduler``."""

import keras
import numpy as np

from keras_dit.diffusion.samplers.multistep import MultistepSolver, combine


@keras.saving.register_keras_serializable(package="keras_dit")
class DPMSolverMultistep(MultistepSolver):
    """DPM-Solver++ (data prediction, ``algorithm_type="dpmsolver++"``, ``solver_type="midpoint"``).

    Step i from lambda_i to lambda_{i+1} (h = lambda_{i+1} - lambda_i) with the x0 predictions m_i, m_{i-1},
    m_{i-2}: ``x = (sigma_{i+1} / sigma_i) x + alpha_{i+1} (1 - e^-h) D``, where D is m_i (first order), m_i
    plus half the slope to m_{i-1} (2M, the midpoint rule) or the third-order extrapolation (3M). As in
    diffusers: the first steps warm up with lower orders, the last step to the data is first order, and with
    ``lower_order_final`` and fewer than 15 steps the second-to-last is at most second order.

    Samples ``GaussianDiffusion`` (eps / v / x0 models) and ``RectifiedFlow`` models (x0 = x - t v: diffusers'
    ``use_flow_sigmas=True, prediction_type="flow_prediction"``, ``flow_shift`` = the shift); 10 to 20 steps
    give guided samples close to 50 DDIM or Euler steps. Arguments: see ``MultistepSolver``.

    Example:
    >>> model.generate(labels, sampler=kd.samplers.DPMSolverMultistep(), num_steps=15, guidance_scale=4.0)
    """

    diffusers_grid = "dpm_solver"

    def _orders(self, n):
        orders = []
        for i in range(n):
            lower_second = i == n - 2 and self.lower_order_final and n < 15
            orders.append(1 if self.order == 1 or i < 1 or i == n - 1 else
                          2 if self.order == 2 or i < 2 or lower_second else 3)
        return orders

    def _step_row(self, i, orders, alpha, sigma, lam):
        order = orders[i]
        h = lam[i + 1] - lam[i]
        a = alpha[i + 1] * -np.expm1(-h)  # alpha_{i+1} (1 - e^-h)
        m = np.zeros(self.order)  # on m_i, m_{i-1}, m_{i-2}
        m[0] = a
        if order == 2:
            inverse_r0 = h / (lam[i] - lam[i - 1])  # 0 when lambda_{i-1} = -inf (a flow's t = 1)
            m[:2] += 0.5 * a * inverse_r0 * np.array([1.0, -1.0])
        elif order == 3:
            h0, h1 = lam[i] - lam[i - 1], lam[i - 1] - lam[i - 2]
            d1_0 = h / h0 * np.array([1.0, -1.0, 0.0])
            d1_1 = h / h1 * np.array([0.0, 1.0, -1.0])
            if np.isinf(h1):  # lambda_{i-2} = -inf: the third-order terms vanish
                d1, d2 = d1_0, np.zeros(3)
            else:
                r0, r1 = h0 / h, h1 / h
                d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
                d2 = (d1_0 - d1_1) / (r0 + r1)
            em1 = np.expm1(-h)
            m += alpha[i + 1] * ((em1 / h + 1.0) * d1 - ((em1 + h) / h**2 - 0.5) * d2)
        return {"x": sigma[i + 1] / sigma[i], **{f"m{k}": m[k] for k in range(self.order)}}

    def _state_size(self):
        return self.order - 1

    def step(self, model_fn, x, coefficients, state, objective, noise=None):
        x0 = self.data_prediction(model_fn, x, coefficients, objective)
        x = coefficients["x"] * x + combine(coefficients, [f"m{k}" for k in range(self.order)], (x0, *state))
        return x, (x0, *state)[: self._state_size()]
