"""Spatial down- and up-sampling by 2 with a 3x3 convolution, in the layout of Stable Diffusion's VAE."""

import keras
from keras import ops

from keras_dit.layers.resnet_block import conv


def _halve(size):
    return None if size is None else size // 2


@keras.saving.register_keras_serializable(package="keras_dit")
class Downsample(keras.layers.Layer):
    """Pad one row and column at the bottom/right, then a stride-2 3x3 conv (LDM's asymmetric padding).

    Call arguments:
        x: (B, H, W, channels) with even H, W. Returns (B, H / 2, W / 2, channels).
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv = conv(channels, 3, "conv", strides=2, padding="valid")

    def build(self, input_shape=None):
        self.conv.build((None, None, None, self.channels))

    def call(self, x):
        return self.conv(ops.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]]))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, _halve(h), _halve(w), self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@keras.saving.register_keras_serializable(package="keras_dit")
class Upsample(keras.layers.Layer):
    """Nearest-neighbour x2 upsampling followed by a 3x3 conv.

    Call arguments:
        x: (B, H, W, channels). Returns (B, 2 H, 2 W, channels).
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv = conv(channels, 3, "conv")

    def build(self, input_shape=None):
        self.conv.build((None, None, None, self.channels))

    def call(self, x):
        x = ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)  # (B, 2H, 2W, C)
        return self.conv(x)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}
