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


def cosine_similarity(a, b, axis=-1, floor=0.1):
    """Cosine similarity of ``a`` and ``b`` along ``axis``, with ``|a|`` floored at ``floor * |b|``.

    The floor keeps the gradient bounded where ``a`` is (near) zero, as a zero-initialised output layer predicts
    at the first step: there the exact cosine's gradient is ``b / (eps |b|)``, which (1e8 times the squared
    error's) would swamp Adam's second-moment estimates and stall training. Above the floor it is exact.
    """
    dot = ops.sum(a * b, axis=axis)
    norm_b = ops.sqrt(ops.sum(ops.square(b), axis=axis) + 1e-24)
    norm_a = ops.maximum(ops.sqrt(ops.sum(ops.square(a), axis=axis) + 1e-24), floor * norm_b)
    return dot / ops.maximum(norm_a * norm_b, 1e-12)
