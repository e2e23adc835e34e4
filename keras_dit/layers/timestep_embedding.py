"""Timestep embedding: scalar t -> sinusoidal features -> MLP, as in DiT (Peebles & Xie, 2023)."""

import keras
import numpy as np
from keras import ops


def timestep_frequencies(dim, max_period=10000.0, frequency_shift=0):
    """The ``dim // 2`` sinusoid frequencies, in float32 as the reference computes them.

    The reference DiT divides the exponent by ``half``; diffusers divides by ``half - frequency_shift`` with
    ``frequency_shift=1``. Both are supported so that converted checkpoints reproduce their source exactly.
    """
    half = dim // 2
    if half - frequency_shift <= 0:
        raise ValueError(f"frequency_dim={dim} is too small for frequency_shift={frequency_shift}.")
    exponent = np.float32(-np.log(max_period)) * np.arange(half, dtype=np.float32)
    return np.exp(exponent / np.float32(half - frequency_shift)).astype(np.float32)


def sinusoidal_embedding(t, dim, max_period=10000.0, frequency_shift=0):
    """(B,) timesteps -> (B, dim) features ``[cos(t f), sin(t f)]``, always computed in float32."""
    freqs = ops.convert_to_tensor(timestep_frequencies(dim, max_period, frequency_shift))
    args = ops.cast(t, "float32")[:, None] * freqs[None, :]
    embedding = ops.concatenate([ops.cos(args), ops.sin(args)], axis=-1)
    if dim % 2:
        embedding = ops.pad(embedding, [[0, 0], [0, 1]])
    return embedding


@keras.saving.register_keras_serializable(package="keras_dit")
class TimestepEmbedding(keras.layers.Layer):
    """Embeds (B,) diffusion timesteps into (B, hidden_size) vectors.

    Args:
        hidden_size: output width.
        frequency_dim: number of sinusoidal features fed to the MLP (256 in DiT).
        max_period: longest sinusoid period.
        frequency_shift: 0 as the reference DiT, 1 as diffusers (see ``timestep_frequencies``).

    It computes in float32 under any policy (pass ``dtype`` to override): timesteps up to 1000 need float32
    phases, and the (B, D) MLP is cheap.
    """

    def __init__(self, hidden_size, frequency_dim=256, max_period=10000.0, frequency_shift=0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.frequency_dim = frequency_dim
        self.max_period = max_period
        self.frequency_shift = frequency_shift
        init = keras.initializers.RandomNormal(stddev=0.02)
        self.dense_in = keras.layers.Dense(
            hidden_size, kernel_initializer=init, dtype=self.dtype_policy, name="dense_in"
        )
        self.dense_out = keras.layers.Dense(
            hidden_size, kernel_initializer=init, dtype=self.dtype_policy, name="dense_out"
        )

    def build(self, input_shape):
        self.dense_in.build((None, self.frequency_dim))
        self.dense_out.build((None, self.hidden_size))

    def call(self, t):
        features = sinusoidal_embedding(t, self.frequency_dim, self.max_period, self.frequency_shift)
        features = ops.cast(features, self.compute_dtype)
        return self.dense_out(ops.silu(self.dense_in(features)))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.hidden_size)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "frequency_dim": self.frequency_dim,
            "max_period": self.max_period,
            "frequency_shift": self.frequency_shift,
        }
