"""adaLN modulation: a condition vector -> per-channel shift / scale / gate (adaLN-Zero, DiT).

Under a mixed-precision policy the modulation is computed in float32 (it is a small (B, D) GEMM), and
``modulate`` / ``gated_residual`` apply it in float32: a bfloat16 ``1 + scale`` or gate would round away the
small values adaLN-Zero starts from.
"""

import keras
from keras import ops


def modulate(x, shift, scale):
    """(B, T, D) tokens shifted and scaled per sample: ``x * (1 + scale) + shift``."""
    return x * (1.0 + scale[:, None, :]) + shift[:, None, :]


def gated_residual(x, gate, branch):
    """``x + gate * branch`` per sample, computed in the gate's dtype (float32) and returned in ``x``'s dtype.

    x, branch: (B, T, D) tokens (the compute dtype); gate: (B, D).
    """
    update = ops.cast(branch, gate.dtype) * gate[:, None, :]
    return ops.cast(ops.cast(x, update.dtype) + update, x.dtype)


@keras.saving.register_keras_serializable(package="keras_dit")
class AdaLNModulation(keras.layers.Layer):
    """SiLU -> Dense(num_chunks * hidden_size) -> ``num_chunks`` tensors of (B, hidden_size).

    The Dense starts at zero (adaLN-Zero), so every gated residual branch starts as the identity. It computes in
    float32 under any policy (pass ``dtype`` to override).
    """

    def __init__(self, hidden_size, num_chunks, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_chunks = num_chunks
        self.dense = keras.layers.Dense(
            num_chunks * hidden_size, kernel_initializer="zeros", bias_initializer="zeros", dtype=self.dtype_policy,
            name="dense",
        )

    def build(self, input_shape):
        self.dense.build((None, input_shape[-1]))

    def call(self, c):
        return ops.split(self.dense(ops.silu(c)), self.num_chunks, axis=-1)

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size, "num_chunks": self.num_chunks}
