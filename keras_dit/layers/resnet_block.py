"""The convolutional residual block of the KL-VAE (and of U-Nets): GroupNorm, SiLU, 3x3 conv, twice."""

import keras
from keras import ops


def group_norm(groups, epsilon, name):
    """GroupNorm over the channel axis (channels-last), as PyTorch's ``nn.GroupNorm``; ``groups=None`` is no
    normalisation (an identity layer of that name)."""
    if groups is None:
        return keras.layers.Identity(name=name)
    return keras.layers.GroupNormalization(groups=groups, epsilon=epsilon, name=name)


def conv(channels, kernel_size, name, strides=1, padding="same", dtype=None):
    """A 2D convolution; ``padding="same"`` with a 3x3 kernel is PyTorch's ``padding=1``; ``dtype`` overrides the
    global dtype policy."""
    return keras.layers.Conv2D(channels, kernel_size, strides=strides, padding=padding, name=name, dtype=dtype)


@keras.saving.register_keras_serializable(package="keras_dit")
class ResnetBlock(keras.layers.Layer):
    """``x + conv(silu(norm(conv(silu(norm(x))))))``; the skip is a 1x1 conv when the width changes.

    Args:
        in_channels, out_channels: input and output widths (both divisible by ``groups``).
        groups: GroupNorm groups (32 in Stable Diffusion); ``None`` leaves the norms out.
        epsilon: GroupNorm epsilon (1e-6 in Stable Diffusion's VAE).

    Call arguments:
        x: (B, H, W, in_channels). Returns (B, H, W, out_channels).
    """

    def __init__(self, in_channels, out_channels, groups=32, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        self.epsilon = epsilon
        self.norm1 = group_norm(groups, epsilon, "norm1")
        self.conv1 = conv(out_channels, 3, "conv1")
        self.norm2 = group_norm(groups, epsilon, "norm2")
        self.conv2 = conv(out_channels, 3, "conv2")
        self.shortcut = conv(out_channels, 1, "shortcut") if in_channels != out_channels else None

    def build(self, input_shape=None):
        inner, outer = (None, None, None, self.in_channels), (None, None, None, self.out_channels)
        self.norm1.build(inner)
        self.conv1.build(inner)
        self.norm2.build(outer)
        self.conv2.build(outer)
        if self.shortcut is not None:
            self.shortcut.build(inner)

    def call(self, x):
        h = self.conv1(ops.silu(self.norm1(x)))
        h = self.conv2(ops.silu(self.norm2(h)))
        return (x if self.shortcut is None else self.shortcut(x)) + h

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.out_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "groups": self.groups,
            "epsilon": self.epsilon,
        }
