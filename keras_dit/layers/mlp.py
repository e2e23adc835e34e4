"""The transformer feed-forward blocks: DiT's GELU MLP and the SwiGLU gated MLP (LLaMA, LightningDiT)."""

import keras
from keras import ops

MLP_TYPES = ("gelu", "swiglu")


@keras.saving.register_keras_serializable(package="keras_dit")
class Mlp(keras.layers.Layer):
    """Dense -> GELU (tanh approximation, as DiT) -> Dense, mapping (..., D) -> (..., D)."""

    def __init__(self, hidden_size, mlp_hidden_size, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.mlp_hidden_size = mlp_hidden_size
        self.fc1 = keras.layers.Dense(self.fc1_units(mlp_hidden_size), name="fc1")
        self.fc2 = keras.layers.Dense(hidden_size, name="fc2")

    def fc1_units(self, mlp_hidden_size):
        return mlp_hidden_size

    def build(self, input_shape):
        self.fc1.build((None, self.hidden_size))
        self.fc2.build((None, self.mlp_hidden_size))

    def call(self, x):
        return self.fc2(ops.gelu(self.fc1(x), approximate=True))

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size, "mlp_hidden_size": self.mlp_hidden_size}


@keras.saving.register_keras_serializable(package="keras_dit")
class SwiGLU(Mlp):
    """Gated MLP ``fc2(silu(a) * b)`` with ``[a, b] = fc1(x)`` (one fused GEMM to ``2 * mlp_hidden_size``).

    ``feed_forward`` sizes it at 2/3 of the GELU MLP's hidden width, so both have about the same parameters.
    """

    def fc1_units(self, mlp_hidden_size):
        return 2 * mlp_hidden_size

    def call(self, x):
        gate, value = ops.split(self.fc1(x), 2, axis=-1)
        return self.fc2(ops.silu(gate) * value)


def feed_forward(mlp_type, hidden_size, mlp_ratio, name):
    """The MLP branch of a block: ``"gelu"`` (``Mlp`` of width ``D * mlp_ratio``) or ``"swiglu"`` (``SwiGLU`` of
    width ``2/3 * D * mlp_ratio``, LightningDiT's sizing: the same parameter count)."""
    if mlp_type not in MLP_TYPES:
        raise ValueError(f"Unknown mlp_type {mlp_type!r}; expected one of {list(MLP_TYPES)}.")
    if mlp_type == "swiglu":
        return SwiGLU(hidden_size, int(2 / 3 * hidden_size * mlp_ratio), name=name)
    return Mlp(hidden_size, int(hidden_size * mlp_ratio), name=name)
