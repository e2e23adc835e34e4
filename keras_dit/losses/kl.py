"""KL divergence of a diagonal Gaussian from the standard normal: the KL-VAE's latent regulariser."""

from keras import ops


def gaussian_kl(mean, logvar):
    """KL(N(mean, exp(logvar)) || N(0, I)) summed over all but the batch axis: (B, ...) -> (B,)."""
    terms = ops.square(mean) + ops.exp(logvar) - 1.0 - logvar
    return 0.5 * ops.sum(ops.reshape(terms, (ops.shape(terms)[0], -1)), axis=-1)
