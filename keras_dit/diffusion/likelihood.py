"""Gaussian log-likelihood terms of the variational bound (Ho et al. 2020; Nichol & Dhariwal 2021), in keras.ops.

DiT trains its learned variance with these: a KL between Gaussians for ``t > 0`` and a discretised Gaussian
likelihood of 8-bit data (bins of width 2/255 on [-1, 1]) at ``t = 0``. Both are in nats, elementwise.
"""

import math

from keras import ops


def normal_kl(mean1, logvar1, mean2, logvar2):
    """KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))), elementwise."""
    mean1, logvar1, mean2, logvar2 = (ops.convert_to_tensor(v) for v in (mean1, logvar1, mean2, logvar2))
    return 0.5 * (
        -1.0 + logvar2 - logvar1 + ops.exp(logvar1 - logvar2) + ops.square(mean1 - mean2) * ops.exp(-logvar2)
    )


def approx_standard_normal_cdf(x):
    """The standard normal CDF by the tanh approximation (the one the reference implementations use)."""
    return 0.5 * (1.0 + ops.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def discretized_gaussian_log_likelihood(x, means, log_scales):
    """Log-probability of the 8-bit bin holding ``x`` (in [-1, 1]) under N(means, exp(log_scales) ** 2).

    The two end bins extend to -inf and +inf. Probabilities are floored at 1e-12 before the log.
    """
    x, means, log_scales = (ops.convert_to_tensor(v) for v in (x, means, log_scales))
    centered = x - means
    inv_std = ops.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_std * (centered - 1.0 / 255.0))
    log_cdf_plus = ops.log(ops.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_min = ops.log(ops.maximum(1.0 - cdf_min, 1e-12))
    log_cdf_delta = ops.log(ops.maximum(cdf_plus - cdf_min, 1e-12))
    return ops.where(x < -0.999, log_cdf_plus, ops.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta))
