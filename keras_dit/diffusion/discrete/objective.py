"""``DiscreteCTMC``: the continuous-time discrete diffusion objective of Campbell et al. 2022 ("tau-LDR").

Each pixel channel holds one of S states. Images in [-1, 1] map to states ``round((x + 1) / 2 (S - 1))``; the
forward process runs every state through a CTMC with rates ``beta(t) R`` (see ``rates.RateMatrix``) from t = 0
(data) to t = 1 (close to the stationary distribution). The backbone sees the noisy states (float32, in [0, S))
and ``1000 t``, and predicts logits of ``p(x0 | x_t)``: shape (B, H, W, C, S). The reverse rates follow from it::

    R_hat(x -> x with dim d set to s) = R_t(s, x_d) sum_a p(x0_d = a | x) q_t(s | a) / q_t(x_d | a)

Training (``DiffusionModel.fit``): ``add_noise`` draws ``x_t ~ q_t(. | x0)`` independently per pixel by the
inverse CDF of ``Phi(noise)``, so it is a pure function of the Gaussian ``noise`` the task already draws (no
extra seed). The loss is the negative continuous-time ELBO (up to a model-free constant) plus
``nll_weight`` times the cross-entropy of the logits to x0. Its second ("signal") term is an expectation over
one forward jump ``x -> x~``; the reference draws ``x~`` and re-weights by a self-normalised sum, whereas here
the sampled state plays ``x~`` and the sum over its D (S - 1) one-jump predecessors is importance-weighted by
``q_t(x | x0) / q_t(x~ | x0)``: the same expectation, exact in expectation, one forward pass, and both terms
evaluated at a state drawn from ``q_t`` exactly.
"""

import keras
import numpy as np
from keras import ops

from keras_dit.backend import concrete_value
from keras_dit.diffusion.discrete.rates import RateMatrix
from keras_dit.diffusion.objective import Objective
from keras_dit.validation import check_labels, check_nonnegative, check_positive, check_range


def inverse_cdf(probs, u):
    """Categorical draws by the inverse CDF: (..., S) probabilities and (...) uniforms -> (...) int32 indices.

    The index returned always has positive probability (u in (0, 1) is scaled by the row total).
    """
    cdf = ops.cumsum(probs, axis=-1)
    target = u[..., None] * cdf[..., -1:]
    index = ops.sum(ops.cast(cdf < target, "int32"), axis=-1)
    return ops.minimum(index, probs.shape[-1] - 1)


def normal_to_uniform(noise):
    """Standard normal values -> uniforms in (0, 1) (the normal CDF), kept off 0 and 1."""
    u = 0.5 * (1.0 + ops.erf(ops.cast(noise, "float32") / np.sqrt(2.0)))
    return ops.clip(u, 1e-7, 1.0 - 1e-7)


@keras.saving.register_keras_serializable(package="keras_dit")
class DiscreteCTMC(Objective):
    """Discrete-state diffusion with a continuous-time Markov chain forward process.

    Args:
        num_states: S, the states per pixel channel (256 for 8-bit images; 2-16 for quantised data).
        rate: forward rate matrix, ``"gaussian"`` (ordinal, the reference's image default) or ``"uniform"``.
        rate_const: the ``uniform`` matrix's jump rate.
        rate_sigma, Q_sigma, time_exponential, time_base: the ``gaussian`` matrix (see ``RateMatrix``).
        nll_weight: weight of the direct cross-entropy of the predicted x0 (0.001 in the reference).
        eps_ratio: added to the ratios of transition probabilities, against division by zero (1e-9).
        min_time: training times are uniform in [min_time, 1] (0.01).
    """

    def __init__(self, num_states, rate="gaussian", rate_const=1.0, rate_sigma=6.0, Q_sigma=512.0,
                 time_exponential=100.0, time_base=3.0, nll_weight=0.001, eps_ratio=1e-9, min_time=0.01):
        self.rate_matrix = RateMatrix(rate, num_states, rate_const, rate_sigma, Q_sigma, time_exponential, time_base)
        self.num_states = self.rate_matrix.num_states
        self.rate = rate
        self.nll_weight = check_nonnegative("nll_weight", nll_weight)
        self.eps_ratio = check_positive("eps_ratio", eps_ratio)
        self.min_time = check_range("min_time", min_time, 0, 1, "[)")

    def prediction_channels(self, in_channels):
        """The backbone outputs (B, H, W, C, S) logits: ``C * S`` values per pixel."""
        return in_channels * self.num_states

    # ------------------------------------------------------------------------------------------------
    # States <-> images
    # ------------------------------------------------------------------------------------------------

    def to_states(self, images):
        """[-1, 1] images -> int32 states in [0, S) (nearest of S evenly spaced levels)."""
        values = concrete_value(images)
        if values is not None and values.size and (values.min() < -1.0 - 1e-3 or values.max() > 1.0 + 1e-3):
            raise ValueError(
                f"Images must lie in [-1, 1] to be quantised to {self.num_states} states, got values in "
                f"[{values.min():.3g}, {values.max():.3g}]; scale uint8 images with x / 127.5 - 1."
            )
        states = ops.round((ops.cast(images, "float32") + 1.0) * (0.5 * (self.num_states - 1)))
        return ops.cast(ops.clip(states, 0, self.num_states - 1), "int32")

    def from_states(self, states):
        """States in [0, S) -> images in [-1, 1]."""
        return ops.cast(states, "float32") * (2.0 / (self.num_states - 1)) - 1.0

    def check_states(self, states):
        """Raise if concrete ``states`` are not integers in [0, S); returns them as int32."""
        values = concrete_value(states)
        if values is not None:
            check_labels(values, self.num_states - 1, "Pixel states",
                         hint=f"num_states={self.num_states}: quantise images with to_states()")
        return ops.cast(states, "int32")

    def initial_states(self, noise):
        """Draws from the stationary distribution (where t = 1 ends), one per entry of ``noise`` (inverse CDF)."""
        pi = ops.convert_to_tensor(self.rate_matrix.stationary, "float32")
        return inverse_cdf(pi, normal_to_uniform(noise))

    # ------------------------------------------------------------------------------------------------
    # The objective protocol
    # ------------------------------------------------------------------------------------------------

    def sample_training_time(self, batch_size, seed_generator):
        """(B,) float32 times, uniform in [min_time, 1]."""
        return keras.random.uniform((batch_size,), self.min_time, 1.0, seed=seed_generator)

    def model_time(self, t):
        return 1000.0 * t

    def add_noise(self, x0, noise, t):
        """x_t ~ q_t(. | x0) per pixel, as float32 states (B, H, W, C); x0 are [-1, 1] images."""
        states = self.to_states(x0)
        rows = self._rows(self.rate_matrix.transition(t), states)  # (B, D, S): q_t(. | x0_d)
        x_t = inverse_cdf(rows, normal_to_uniform(ops.reshape(noise, ops.shape(rows)[:2])))
        return ops.cast(ops.reshape(x_t, ops.shape(states)), "float32")

    def loss(self, prediction, x0, noise, t, x_t):
        """(B,) negative ELBO (up to a constant) + ``nll_weight`` * mean cross-entropy to x0."""
        S, eps = self.num_states, self.eps_ratio
        x0 = self._flat(self.to_states(x0))  # (B, D)
        x = self._flat(self.check_states(x_t))  # (B, D)
        logits = ops.reshape(ops.cast(prediction, "float32"), (ops.shape(x)[0], -1, S))  # (B, D, S)
        transition = self.rate_matrix.transition(t)  # (B, S, S)
        rates = self.rate_matrix.rates(t)  # (B, S, S)
        one_hot_x = ops.one_hot(x, S)  # (B, D, S)
        q_from_x0 = self._rows(transition, x0)  # (B, D, S): q_t(s | x0_d)
        ratio = self._posterior_ratio(logits, x, transition)  # (B, D, S)
        into_x = ops.einsum("bsk,bdk->bds", rates, one_hot_x) * (1.0 - one_hot_x)  # R_t(s, x_d), s != x_d
        reverse = into_x * ratio  # R_hat(x -> x with d set to s)
        # One forward jump y -> x per (d, s), weighted by q_t(y | x0) / q_t(x | x0).
        weight = into_x * q_from_x0 / (ops.sum(q_from_x0 * one_hot_x, axis=-1, keepdims=True) + eps)
        neg_elbo = ops.sum(reverse, axis=(1, 2)) - ops.sum(weight * ops.log(ratio + eps), axis=(1, 2))
        log_p = ops.log_softmax(logits, axis=-1)
        nll = -ops.mean(ops.sum(log_p * ops.one_hot(x0, S), axis=-1), axis=1)
        return neg_elbo + self.nll_weight * nll

    # ------------------------------------------------------------------------------------------------
    # Reverse process (used by the samplers)
    # ------------------------------------------------------------------------------------------------

    def reverse_rates(self, logits, x, t):
        """Model reverse rates out of ``x`` (B, H, W, C) at time ``t`` (B,): (B, H, W, C, S), 0 at ``x`` itself."""
        shape = ops.shape(x)
        x = self._flat(self.check_states(x))
        S = self.num_states
        logits = ops.reshape(ops.cast(logits, "float32"), (ops.shape(x)[0], -1, S))
        one_hot_x = ops.one_hot(x, S)
        into_x = ops.einsum("bsk,bdk->bds", self.rate_matrix.rates(t), one_hot_x) * (1.0 - one_hot_x)
        reverse = into_x * self._posterior_ratio(logits, x, self.rate_matrix.transition(t))
        return ops.reshape(reverse, (*shape, S))

    def forward_rates_from(self, x, t):
        """Forward rates out of ``x``, ``R_t(x_d, s)``: (B, H, W, C, S), 0 at ``x`` (the corrector's other half)."""
        shape = ops.shape(x)
        x = self._flat(self.check_states(x))
        one_hot_x = ops.one_hot(x, self.num_states)
        out = ops.einsum("bdk,bks->bds", one_hot_x, self.rate_matrix.rates(t)) * (1.0 - one_hot_x)
        return ops.reshape(out, (*shape, self.num_states))

    def _posterior_ratio(self, logits, x, transition):
        """sum_a p(a | x) q_t(s | a) / q_t(x_d | a): (B, D, S)."""
        p = ops.softmax(logits, axis=-1)  # (B, D, S) over x0 = a
        q_to_x = ops.einsum("bak,bdk->bda", transition, ops.one_hot(x, self.num_states))  # q_t(x_d | a)
        return ops.einsum("bda,bas->bds", p / (q_to_x + self.eps_ratio), transition)

    @staticmethod
    def _flat(states):
        return ops.reshape(states, (ops.shape(states)[0], -1))

    def _rows(self, transition, states):
        """Rows ``transition[b, states[b, d], :]``: (B, D, S)."""
        return ops.einsum("bdk,bks->bds", ops.one_hot(self._flat(states), self.num_states), transition)

    def get_config(self):
        config = self.rate_matrix.get_config()
        config["rate"] = config.pop("name")
        return {**config, "nll_weight": self.nll_weight, "eps_ratio": self.eps_ratio, "min_time": self.min_time}
