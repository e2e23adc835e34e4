"""A float64 NumPy transcription of DiT's ``diffusion/gaussian_diffusion.py`` training loss for a learned-range
variance and MSE loss type (its default): MSE to the target plus the variational bound in bits, the mean frozen.
Written here from the paper's formulas and the reference's structure, to test ``GaussianDiffusion.loss``.
"""

import numpy as np


def normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (-1.0 + logvar2 - logvar1 + np.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * np.exp(-logvar2))


def approx_cdf(x):
    return 0.5 * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def discretized_log_likelihood(x, means, log_scales):
    centred, inv_std = x - means, np.exp(-log_scales)
    cdf_plus, cdf_min = approx_cdf(inv_std * (centred + 1 / 255)), approx_cdf(inv_std * (centred - 1 / 255))
    log_cdf_plus = np.log(np.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_min = np.log(np.maximum(1 - cdf_min, 1e-12))
    log_delta = np.log(np.maximum(cdf_plus - cdf_min, 1e-12))
    return np.where(x < -0.999, log_cdf_plus, np.where(x > 0.999, log_one_minus_cdf_min, log_delta))


def dit_training_loss(model_output, x_start, noise, t, betas, prediction="eps"):
    """Per-sample loss of DiT's ``training_losses`` (LEARNED_RANGE, MSE), channels last, t integer (B,)."""
    betas = np.asarray(betas, np.float64)
    alphas_cumprod = np.cumprod(1 - betas)
    alphas_cumprod_prev = np.append(1.0, alphas_cumprod[:-1])
    posterior_variance = betas * (1 - alphas_cumprod_prev) / (1 - alphas_cumprod)
    posterior_log_variance_clipped = np.log(np.append(posterior_variance[1], posterior_variance[1:]))
    coef1 = betas * np.sqrt(alphas_cumprod_prev) / (1 - alphas_cumprod)
    coef2 = (1 - alphas_cumprod_prev) * np.sqrt(1 - betas) / (1 - alphas_cumprod)
    losses = []
    for i, step in enumerate(np.asarray(t).astype(int)):
        x0, eps = x_start[i].astype(np.float64), noise[i].astype(np.float64)
        x_t = np.sqrt(alphas_cumprod[step]) * x0 + np.sqrt(1 - alphas_cumprod[step]) * eps
        channels = x0.shape[-1]
        output, var_values = model_output[i][..., :channels], model_output[i][..., channels:]
        frac = (var_values + 1) / 2
        model_log_variance = frac * np.log(betas[step]) + (1 - frac) * posterior_log_variance_clipped[step]
        if prediction == "eps":  # _predict_xstart_from_eps
            pred_x0 = np.sqrt(1 / alphas_cumprod[step]) * x_t - np.sqrt(1 / alphas_cumprod[step] - 1) * output
            target = eps
        else:
            pred_x0, target = output, x0
        model_mean = coef1[step] * pred_x0 + coef2[step] * x_t
        true_mean = coef1[step] * x0 + coef2[step] * x_t
        if step == 0:
            vb = -discretized_log_likelihood(x0, model_mean, 0.5 * model_log_variance).mean() / np.log(2)
        else:
            kl = normal_kl(true_mean, posterior_log_variance_clipped[step], model_mean, model_log_variance)
            vb = kl.mean() / np.log(2)
        losses.append(((target - output) ** 2).mean() + vb)
    return np.array(losses)
