"""The objective protocol shared by ``GaussianDiffusion`` and ``RectifiedFlow``.

An objective says how clean data ``x0`` and noise are mixed at a time ``t`` (``add_noise``), which time values
training draws (``sample_training_time``), what the backbone is fed as time (``model_time``) and the per-sample
loss of a prediction (``loss``). Times are in the objective's native units: integer-valued floats in [0, T) for
Gaussian diffusion, t in [0, 1] (1 = noise) for flows. Samplers read the same objects to invert the process.
"""

from keras import ops

from keras_dit.diffusion.configurable import Configurable


class Objective(Configurable):
    """Base class: Keras-serializable configuration (``Configurable``) plus the helpers the objectives use."""

    learn_sigma = False

    def prediction_channels(self, in_channels):
        """Channels the backbone must output for ``in_channels`` data channels."""
        return 2 * in_channels if self.learn_sigma else in_channels

    def model_time(self, t):
        """What the backbone is fed as time for native time ``t``."""
        return t


def per_sample_mean(x):
    """Mean over every axis but the first: (B, ...) -> (B,)."""
    return ops.mean(x, axis=tuple(range(1, len(x.shape))))


def broadcast_to_rank(values, x):
    """(B,) per-sample values reshaped to (B, 1, ..., 1) so they broadcast against ``x``."""
    return ops.reshape(values, (-1,) + (1,) * (len(x.shape) - 1))


def cosine_similarity(a, b, axis=-1):
    """Cosine similarity of ``a`` and ``b`` along ``axis``, 0 where either is zero, with finite gradients there
    (a zero-initialised output layer predicts exactly 0 at the first step)."""
    dot = ops.sum(a * b, axis=axis)
    squared_norms = ops.sum(ops.square(a), axis=axis) * ops.sum(ops.square(b), axis=axis)
    return dot * ops.rsqrt(ops.maximum(squared_norms, 1e-16))
