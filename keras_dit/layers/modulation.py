"""adaLN modulation: a condition vector -> per-channel shift / scale / gate (adaLN-Zero, DiT)."""

import keras
from keras import ops


def modulate(x, shift, scale):
    """(B, T, D) tokens shifted and scaled per sample: ``x * (1 + scale) + shift``."""
    return x * (1.0 + scale[:, None, :]) + shift[:, None, :]


@keras.saving.register_keras_serializable(package="keras_dit")
class AdaLNModulation(keras.layers.Layer):
    """SiLU -> Dense(num_chunks * hidden_size) -> ``num_chunks`` tensors of (B, hidden_size).

    The Dense starts at zero (adaLN-Zero), so every gated residual branch starts as the identity.
    """

    def __init__(self, hidden_size, num_chunks, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_chunks = num_chunks
        self.dense = keras.layers.Dense(
            num_chunks * hidden_size, kernel_initializer="zeros", bias_initializer="zeros", name="dense"
        )

    def build(self, input_shape):
        self.dense.build((None, input_shape[-1]))

    def call(self, c):
        return ops.split(self.dense(ops.silu(c)), self.num_chunks, axis=-1)

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size, "num_chunks": self.num_chunks}
