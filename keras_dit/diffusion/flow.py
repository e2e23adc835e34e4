"""Rectified flow (Liu et al. 2022; SD3, Esser et al. 2024): x_t = (1 - t) x0 + t eps, velocity eps - x0."""

import keras
from keras import ops

from keras_dit.diffusion.objective import Objective, broadcast_to_rank, cosine_similarity, per_sample_mean
from keras_dit.validation import check_choice, check_nonnegative, check_positive

TIMESTEP_SAMPLINGS = ("uniform", "logit_normal")
DIRECTION_AXES = ("channels", "sample")


def shift_time(t, shift):
    """SD3's time shift ``shift t / (1 + (shift - 1) t)``: shift > 1 spends more time near noise (t = 1).

    Works on floats, NumPy arrays and tensors; it maps [0, 1] onto itself, keeping 0 and 1.
    """
    return shift * t / (1.0 + (shift - 1.0) * t)


@keras.saving.register_keras_serializable(package="keras_dit")
class RectifiedFlow(Objective):
    """The rectified-flow objective: the backbone predicts the velocity ``eps - x0``.

    Time runs from data (t = 0) to noise (t = 1); the backbone is fed ``1000 t``, the range DiT's timestep
    embedding was designed for. Training times are drawn uniformly or logit-normally (SD3), then shifted by
    ``shift``; samplers use the same ``shift`` for their time grid.

    Args:
        timestep_sampling: ``"uniform"`` or ``"logit_normal"`` (t = sigmoid(N(logit_mean, logit_std))).
        logit_mean, logit_std: the logit-normal's parameters.
        shift: SD3's time shift (1 = none; SD3 uses 3 at 1024 px).
        direction_weight: weight of LightningDiT's velocity-direction term ``1 - cos(prediction, velocity)``
            added to the squared error (LightningDiT uses 1); 0 (default) is the plain loss.
        direction_axes: what one cosine compares: ``"channels"`` (per pixel, over channels, as LightningDiT on
            its 32-channel latents) or ``"sample"`` (the whole flattened velocity of each sample, which is what
            a 1- to 4-channel input needs: a cosine over one channel only sees its sign).
    """

    def __init__(self, timestep_sampling="uniform", logit_mean=0.0, logit_std=1.0, shift=1.0, direction_weight=0.0,
                 direction_axes="channels"):
        check_choice("timestep_sampling", timestep_sampling, TIMESTEP_SAMPLINGS)
        check_choice("direction_axes", direction_axes, DIRECTION_AXES)
        self.timestep_sampling = timestep_sampling
        self.logit_mean = float(logit_mean)
        self.logit_std = check_positive("RectifiedFlow logit_std", logit_std)
        self.shift = check_positive("RectifiedFlow shift", shift)
        self.direction_weight = check_nonnegative("RectifiedFlow direction_weight", direction_weight)
        self.direction_axes = direction_axes

    def sample_training_time(self, batch_size, seed_generator):
        """(B,) float32 times in [0, 1]."""
        if self.timestep_sampling == "uniform":
            u = keras.random.uniform((batch_size,), seed=seed_generator)
        else:
            u = ops.sigmoid(
                keras.random.normal((batch_size,), mean=self.logit_mean, stddev=self.logit_std, seed=seed_generator)
            )
        return shift_time(u, self.shift)

    def add_noise(self, x0, noise, t):
        """x_t = (1 - t) x0 + t noise, for (B,) times ``t``."""
        x0, noise = ops.convert_to_tensor(x0), ops.convert_to_tensor(noise)
        t = broadcast_to_rank(ops.cast(t, x0.dtype), x0)
        return (1.0 - t) * x0 + t * noise

    def model_time(self, t):
        return 1000.0 * t

    def target(self, x0, noise, t):
        """The velocity ``dx_t / dt = noise - x0``."""
        return ops.convert_to_tensor(noise) - ops.convert_to_tensor(x0)

    def loss(self, prediction, x0, noise, t, x_t):
        """(B,) per-sample mean squared error of the predicted velocity, plus ``direction_weight`` times the
        velocity-direction term ``1 - cos(prediction, velocity)`` (averaged per sample)."""
        prediction, target = ops.cast(prediction, "float32"), self.target(x0, noise, t)
        loss = per_sample_mean(ops.square(prediction - target))
        if self.direction_weight:
            loss = loss + self.direction_weight * per_sample_mean(1.0 - self._cosine(prediction, target))
        return loss

    def _cosine(self, a, b):
        """Cosine similarity over the last axis (``"channels"``) or over each whole sample: (B, ...) or (B, 1)."""
        if self.direction_axes == "sample":
            a, b = ops.reshape(a, (ops.shape(a)[0], 1, -1)), ops.reshape(b, (ops.shape(b)[0], 1, -1))
        return cosine_similarity(a, b)

    def get_config(self):
        return {
            "timestep_sampling": self.timestep_sampling,
            "logit_mean": self.logit_mean,
            "logit_std": self.logit_std,
            "shift": self.shift,
            "direction_weight": self.direction_weight,
            "direction_axes": self.direction_axes,
        }
