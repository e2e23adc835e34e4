"""Patchify / unpatchify and the patch embedding: (B, H, W, C) images <-> (B, T, D) tokens."""

import keras
from keras import ops


def patchify(x, patch_size):
    """(B, H, W, C) -> (B, H/p * W/p, p * p * C); each patch flattened in (row, column, channel) order."""
    _, height, width, channels = x.shape
    p = patch_size
    x = ops.reshape(x, (-1, height // p, p, width // p, p, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, (height // p) * (width // p), p * p * channels))


def unpatchify(tokens, grid_size, patch_size, channels):
    """(B, h * w, p * p * C) -> (B, h * p, w * p, C); the inverse of ``patchify``."""
    grid_h, grid_w = grid_size
    p = patch_size
    x = ops.reshape(tokens, (-1, grid_h, grid_w, p, p, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, grid_h * p, grid_w * p, channels))


@keras.saving.register_keras_serializable(package="keras_dit")
class PatchEmbedding(keras.layers.Layer):
    """Splits images into p x p patches and projects each to ``hidden_size``.

    Equivalent to a stride-p convolution with a p x p kernel, written as patchify + Dense so that the
    xavier-uniform initialisation sees the same fan-in/fan-out as the reference's flattened kernel.
    """

    def __init__(self, patch_size, hidden_size, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = patch_size
        self.hidden_size = hidden_size
        self.projection = keras.layers.Dense(hidden_size, name="projection")

    def build(self, input_shape):
        channels = input_shape[-1]
        self.projection.build((None, None, self.patch_size * self.patch_size * channels))

    def call(self, x):
        return self.projection(patchify(x, self.patch_size))

    def compute_output_shape(self, input_shape):
        _, height, width, _ = input_shape
        return (input_shape[0], (height // self.patch_size) * (width // self.patch_size), self.hidden_size)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size, "hidden_size": self.hidden_size}
