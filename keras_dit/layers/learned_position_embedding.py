"""A learned position embedding added to a fixed-length token sequence (U-ViT)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dit")
class LearnedPositionEmbedding(keras.layers.Layer):
    """Adds a trained (T, D) table, initialised N(0, 0.02), to (B, T, D) tokens; T and D come from the input."""

    def build(self, input_shape):
        self.embedding = self.add_weight(
            shape=tuple(input_shape[1:]), initializer=keras.initializers.RandomNormal(stddev=0.02), name="embedding"
        )

    def call(self, tokens):
        return tokens + ops.cast(self.embedding, tokens.dtype)[None]
