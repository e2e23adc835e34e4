"""The transformer feed-forward block."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dit")
class Mlp(keras.layers.Layer):
    """Dense -> GELU (tanh approximation, as DiT) -> Dense, mapping (..., D) -> (..., D)."""

    def __init__(self, hidden_size, mlp_hidden_size, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.mlp_hidden_size = mlp_hidden_size
        self.fc1 = keras.layers.Dense(mlp_hidden_size, name="fc1")
        self.fc2 = keras.layers.Dense(hidden_size, name="fc2")

    def build(self, input_shape):
        self.fc1.build((None, self.hidden_size))
        self.fc2.build((None, self.mlp_hidden_size))

    def call(self, x):
        return self.fc2(ops.gelu(self.fc1(x), approximate=True))

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size, "mlp_hidden_size": self.mlp_hidden_size}
