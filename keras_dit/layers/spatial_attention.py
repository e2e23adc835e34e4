"""Single-head self-attention over the pixels of a feature map (the KL-VAE's mid-block attention)."""

import keras
from keras import ops

from keras_dit.layers.resnet_block import group_norm


@keras.saving.register_keras_serializable(package="keras_dit")
class SpatialSelfAttention(keras.layers.Layer):
    """GroupNorm, then one attention head over all H x W positions (width ``channels``), added to the input.

    Args:
        channels: feature width C (the head width too, as in Stable Diffusion's VAE).
        groups, epsilon: GroupNorm groups and epsilon.

    Call arguments:
        x: (B, H, W, C). Returns (B, H, W, C).
    """

    def __init__(self, channels, groups=32, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.groups = groups
        self.epsilon = epsilon
        self.norm = group_norm(groups, epsilon, "norm")
        self.query = keras.layers.Dense(channels, name="query")
        self.key = keras.layers.Dense(channels, name="key")
        self.value = keras.layers.Dense(channels, name="value")
        self.proj = keras.layers.Dense(channels, name="proj")

    def build(self, input_shape=None):
        self.norm.build((None, None, None, self.channels))
        for dense in (self.query, self.key, self.value, self.proj):
            dense.build((None, None, self.channels))

    def call(self, x):
        shape = ops.shape(x)
        h = x.shape[1] if x.shape[1] is not None else shape[1]
        w = x.shape[2] if x.shape[2] is not None else shape[2]
        tokens = ops.reshape(self.norm(x), (-1, h * w, self.channels))  # (B, T, C)
        q, k, v = (ops.expand_dims(dense(tokens), 2) for dense in (self.query, self.key, self.value))  # (B, T, 1, C)
        out = ops.reshape(ops.dot_product_attention(q, k, v), (-1, h * w, self.channels))  # (B, T, C)
        return x + ops.reshape(self.proj(out), (-1, h, w, self.channels))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "groups": self.groups, "epsilon": self.epsilon}
