"""Forward rate matrices of discrete-state diffusion (Campbell et al. 2022): ``uniform`` and ``gaussian``.

Each pixel channel is a continuous-time Markov chain over S states with rate matrix ``beta(t) R`` (rows of
``R`` sum to 0). Both matrices are reversible with respect to their stationary distribution ``pi``
(``pi_i R_ij = pi_j R_ji``), so ``D^1/2 R D^-1/2`` (``D = diag(pi)``) is symmetric and its eigendecomposition
gives ``P(t) = expm(B(t) R)``, ``B(t) = int_0^t beta``, for any batch of times with three small matmuls. The
factors are computed once in float64 NumPy; ``transition`` evaluates them with ``keras.ops`` (traced times
work) and ``transition_numpy`` in float64.
"""

import math

import numpy as np
from keras import ops

from keras_dit.validation import check_choice, check_int, check_positive

RATE_MATRICES = ("uniform", "gaussian")


def _exp(x):
    return np.exp(x) if isinstance(x, (np.ndarray, np.generic, float, int)) else ops.exp(x)


class RateMatrix:
    """A reversible rate matrix ``R`` (S, S) with stationary ``pi`` and time scaling ``beta(t)``.

    Args:
        name: ``"uniform"``: every state jumps to every other at rate ``rate_const``, constant in time
            (``beta = 1``); stationary distribution uniform. ``"gaussian"``: the reference's ordinal
            "Gaussian target" matrix: a state jumps towards the middle state at rate
            ``exp(-(|i - j| - 1)^2 / rate_sigma^2)`` (never past its mirror image ``S - 1 - i``), and the reverse
            jumps have the rates that make ``pi_k ~ exp(-(k + 1 - S / 2)^2 / (2 Q_sigma^2))`` stationary; time runs
            at ``beta(t) = time_base log(time_exponential) time_exponential^t``.
        num_states: S >= 2.
        rate_const, rate_sigma, Q_sigma, time_exponential, time_base: as above (the reference's names).
    """

    def __init__(self, name, num_states, rate_const=1.0, rate_sigma=6.0, Q_sigma=512.0, time_exponential=100.0,
                 time_base=3.0):
        self.name = check_choice("rate matrix", name, RATE_MATRICES)
        self.num_states = S = check_int("num_states (S)", num_states, 2,
                                        hint="use e.g. 256 for 8-bit pixels or 4-16 for quantised images")
        self.rate_const = check_positive("rate_const", rate_const)
        self.rate_sigma = check_positive("rate_sigma", rate_sigma)
        self.Q_sigma = check_positive("Q_sigma", Q_sigma)
        self.time_exponential = check_positive("time_exponential", time_exponential)
        if self.time_exponential == 1.0:
            raise ValueError("time_exponential must differ from 1 (beta(t) = time_base log(time_exponential) ...).")
        self.time_base = check_positive("time_base", time_base)
        states = np.arange(S)
        if self.name == "uniform":
            rate = np.full((S, S), self.rate_const)
            stationary = np.full(S, 1.0 / S)
        else:
            log_pi = -((states + 1.0 - S / 2.0) ** 2) / (2.0 * self.Q_sigma**2)
            stationary = np.exp(log_pi - log_pi.max())
            stationary /= stationary.sum()
            rate = np.zeros((S, S))
            for i in range(S):
                # Towards the middle: up to the mirror state from the lower half, short of it from the upper half.
                targets = range(i + 1, S - i) if i < S // 2 else range(S - i, i) if i > S // 2 else ()
                for j in targets:
                    rate[i, j] = math.exp(-((abs(i - j) - 1) ** 2) / self.rate_sigma**2)
                    rate[j, i] = rate[i, j] * math.exp(log_pi[i] - log_pi[j])  # detailed balance
        np.fill_diagonal(rate, 0.0)
        np.fill_diagonal(rate, -rate.sum(axis=1))
        self.rate = rate  # (S, S) float64, rows sum to 0
        self.stationary = stationary  # (S,)
        root = np.sqrt(stationary)
        eigvals, eigvecs = np.linalg.eigh(root[:, None] * rate / root[None, :])  # symmetric by detailed balance
        self.eigvals = np.minimum(eigvals, 0.0)
        self._left = eigvecs / root[:, None]  # D^-1/2 U
        self._right = eigvecs.T * root[None, :]  # U^T D^1/2

    def beta(self, t):
        """The time scaling ``beta(t)`` of the rates (NumPy values or tensors)."""
        if self.name == "uniform":
            return 1.0 + 0.0 * t
        return self.time_base * math.log(self.time_exponential) * _exp(t * math.log(self.time_exponential))

    def integral(self, t):
        """``B(t) = int_0^t beta(s) ds``."""
        if self.name == "uniform":
            return t
        return self.time_base * (_exp(t * math.log(self.time_exponential)) - 1.0)

    def rates(self, t):
        """(B, S, S) float32 rate matrices ``beta(t) R`` at (B,) times ``t``."""
        beta = ops.cast(self.beta(ops.cast(t, "float32")), "float32")
        return beta[:, None, None] * ops.convert_to_tensor(self.rate, "float32")[None]

    def transition(self, t):
        """(B, S, S) float32 ``P(t)[b, i, j] = q_t(j | i)`` at (B,) times ``t``; rows are clipped at 0 and sum to 1."""
        decay = ops.exp(ops.cast(self.integral(ops.cast(t, "float32")), "float32")[:, None] *
                        ops.convert_to_tensor(self.eigvals, "float32")[None])  # (B, S)
        left = ops.convert_to_tensor(self._left, "float32")
        right = ops.convert_to_tensor(self._right, "float32")
        p = ops.maximum(ops.einsum("ik,bk,kj->bij", left, decay, right), 0.0)
        return p / ops.sum(p, axis=-1, keepdims=True)

    def transition_numpy(self, t):
        """(len(t), S, S) float64 transition matrices at NumPy times ``t``."""
        decay = np.exp(self.integral(np.asarray(t, np.float64))[..., None] * self.eigvals)
        p = np.maximum(np.einsum("ik,bk,kj->bij", self._left, np.atleast_2d(decay), self._right), 0.0)
        return p / p.sum(-1, keepdims=True)

    def get_config(self):
        return {
            "name": self.name, "num_states": self.num_states, "rate_const": self.rate_const,
            "rate_sigma": self.rate_sigma, "Q_sigma": self.Q_sigma, "time_exponential": self.time_exponential,
            "time_base": self.time_base,
        }
