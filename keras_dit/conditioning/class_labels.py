"""Class-label conditioning: an embedding table with a learned null class for classifier-free guidance.

``ClassLabelEmbedding`` is the bare table (DiT's label embedder, the layout the converters load);
``ClassConditioner`` wraps it in the conditioner contract (vector + one token, label names).
"""

import difflib

import keras
import numpy as np
from keras import ops

from keras_dit.conditioning.base import Conditioner


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


@keras.saving.register_keras_serializable(package="keras_dit")
class ClassConditioner(Conditioner):
    """Class labels as a conditioner: (B,) labels -> ``(vector (B, D), tokens (B, 1, D))``.

    The token is the label's embedding (U-ViT's label token; ReiMei's joint-attention context). Labels may be
    given as integers, digit strings (``"7"``) or, with ``label_names``, names (``"seven"``, case-insensitive).
    The null condition is label ``num_classes``, which exists when ``dropout_prob > 0``.

    Args:
        num_classes: number of real classes.
        hidden_size: embedding width D.
        dropout_prob: CFG label-dropout rate; 0 builds a table without a null class.
        label_names: optional list of ``num_classes`` names, in label order.
        seed: seed of the dropout.
    """

    condition_dtype = "int32"

    def __init__(self, num_classes, hidden_size, dropout_prob=0.1, label_names=None, seed=None, **kwargs):
        super().__init__(hidden_size, dropout_prob, seed, **kwargs)
        if label_names is not None:
            label_names = [str(name) for name in label_names]
            if len(label_names) != num_classes:
                raise ValueError(
                    f"label_names has {len(label_names)} names but num_classes={num_classes}; give one per class."
                )
            lowered = [name.lower() for name in label_names]
            if len(set(lowered)) != len(lowered):
                raise ValueError(f"label_names must be unique (case-insensitively), got {label_names}.")
        self.num_classes = num_classes
        self.label_names = label_names
        self.embedding = ClassLabelEmbedding(num_classes, hidden_size, dropout_prob, seed=seed, name="embedding")

    @property
    def num_tokens(self):
        return 1

    def null_condition(self, batch_size):
        if self.embedding.null_label is None:
            raise ValueError(
                "This class conditioner has no null class (dropout_prob=0); build it with dropout_prob > 0 "
                "to use classifier-free guidance."
            )
        return np.full((batch_size,), self.num_classes, dtype="int32")

    def encode(self, condition):
        """Labels as ints, digit strings or names -> (B,) int32 labels; a single label gives a batch of one."""
        items = [condition] if isinstance(condition, (str, int, np.integer)) else list(np.ravel(condition))
        labels = np.array([self._label_of(item) for item in items], dtype="int32")
        self.validate(labels)
        return labels

    def _label_of(self, item):
        if isinstance(item, (int, np.integer)):
            return int(item)
        text = str(item).strip()
        if not text:
            raise ValueError("Empty label prompt; give a class name or number, or use null_condition() for none.")
        if text.lstrip("-").isdigit():
            return int(text)
        names = [name.lower() for name in self.label_names or []]
        if text.lower() in names:
            return names.index(text.lower())
        close = difflib.get_close_matches(text, self.label_names or [], n=3)
        raise ValueError(
            f"Unknown class label {text!r}; expected a number in [0, {self.num_classes - 1}]"
            + (f" or one of the label names (closest: {close})" if self.label_names else
               " (this conditioner has no label_names)")
            + "."
        )

    def validate(self, values):
        highest = self.num_classes if self.embedding.null_label is not None else self.num_classes - 1
        if np.any(values != np.round(values)) or values.min() < 0 or values.max() > highest:
            raise ValueError(
                f"Class labels must be integers in [0, {highest}] ({self.num_classes} classes"
                + (f", {self.num_classes} = null class" if highest == self.num_classes else "")
                + f"); got values in [{values.min()}, {values.max()}]."
            )

    def build(self, input_shape):
        self.embedding.build(input_shape)

    def embed(self, labels):
        vector = self.embedding(labels, training=False)  # (B, D); the dropout is Conditioner.call's, not twice
        return vector, vector[:, None, :]

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "label_names": self.label_names}
