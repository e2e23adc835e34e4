"""Fixed 2D sin-cos position embeddings (MAE / DiT)."""

import keras
import numpy as np
from keras import ops

from keras_dit.validation import check_divisible


def sincos_1d(dim, positions):
    """(N,) positions -> (N, dim) as ``[sin(p w), cos(p w)]`` with w = 1 / 10000^(2i / dim), in float64."""
    check_divisible("sin-cos embedding width", dim, None, 2)
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2.0))
    angles = np.outer(np.asarray(positions, dtype=np.float64).reshape(-1), omega)
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(dim, grid_h, grid_w):
    """(grid_h * grid_w, dim) embedding for row-major tokens.

    As in the reference, the first half of the channels encodes the column and the second half the row.
    """
    check_divisible("2D sin-cos embedding width", dim, None, 4)
    cols, rows = np.meshgrid(np.arange(grid_w, dtype=np.float32), np.arange(grid_h, dtype=np.float32))
    return np.concatenate([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], axis=1).astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_dit")
class SinCosPositionEmbedding(keras.layers.Layer):
    """Adds the fixed 2D sin-cos embedding of a ``grid_size`` token grid to (B, T, D) tokens.

    It is a constant, not a weight: it is rebuilt from the config and never trained.
    """

    def __init__(self, grid_size, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = tuple(grid_size)

    def build(self, input_shape):
        self.embedding = sincos_2d(input_shape[-1], *self.grid_size)[None]

    def call(self, tokens):
        return tokens + ops.cast(self.embedding, tokens.dtype)

    def get_config(self):
        return {**super().get_config(), "grid_size": self.grid_size}
