"""Class-label conditioning: an embedding table with a learned null class for classifier-free guidance."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dit")
class ClassLabelEmbedding(keras.layers.Layer):
    """(B,) integer labels -> (B, hidden_size) vectors.

    Label ``num_classes`` is the null class (the unconditional branch of classifier-free guidance). It exists
    when ``dropout_prob > 0``; during training each label is replaced by it with probability ``dropout_prob``.

    Args:
        num_classes: number of real classes.
        hidden_size: embedding width.
        dropout_prob: label-dropout rate for CFG training (0.1 in DiT); 0 disables the null class.
        seed: seed of the dropout's ``SeedGenerator``.
    """

    def __init__(self, num_classes, hidden_size, dropout_prob=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
        if not 0.0 <= dropout_prob < 1.0:
            raise ValueError(f"dropout_prob must be in [0, 1), got {dropout_prob}.")
        self.num_classes = num_classes
        self.hidden_size = hidden_size
        self.dropout_prob = dropout_prob
        self.seed = seed
        self.has_null_class = dropout_prob > 0
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def null_label(self):
        """The label of the null class, or ``None`` when the table has none."""
        return self.num_classes if self.has_null_class else None

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.num_classes + int(self.has_null_class), self.hidden_size),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
            name="embeddings",
        )

    def call(self, labels, training=False):
        labels = ops.cast(labels, "int32")
        if training and self.has_null_class:
            drop = keras.random.uniform(ops.shape(labels), seed=self.seed_generator) < self.dropout_prob
            labels = ops.where(drop, self.num_classes, labels)
        return ops.take(self.embeddings, labels, axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.hidden_size)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "hidden_size": self.hidden_size,
            "dropout_prob": self.dropout_prob,
            "seed": self.seed,
        }
