"""Class-label conditioning: an embedding table with a learned null class for classifier-free guidance."""

import difflib

import keras
import numpy as np
from keras import ops

from keras_dit.conditioning.base import Conditioner
from keras_dit.validation import check_labels


@keras.saving.register_keras_serializable(package="keras_dit")
class ClassConditioner(Conditioner):
    """Class labels as a conditioner: (B,) labels -> ``(vector (B, D), tokens (B, 1, D))``.

    The vector is the label's row of a (num_classes [+ 1], D) table (DiT's label embedder, the layout the DiT
    converters load); the token is the same vector (U-ViT's label token; ReiMei's joint-attention context).
    Labels may be given as integers, digit strings (``"7"``) or, with ``label_names``, names (``"seven"``,
    case-insensitive); the names are saved with the model. The null condition is label ``num_classes``, which
    exists when ``dropout_prob > 0``.

    Args:
        num_classes: number of real classes.
        hidden_size: embedding width D.
        dropout_prob: CFG label-dropout rate; 0 builds a table without a null class.
        label_names: optional list of ``num_classes`` names, in label order.
        seed: seed of the dropout.
    """

    condition_dtype = "int32"
    description = "class-conditional"
    fields = ("labels", "class_names")

    def __init__(self, num_classes, hidden_size, dropout_prob=0.1, label_names=None, seed=None, **kwargs):
        super().__init__(hidden_size, dropout_prob, seed, **kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
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
        self.has_null_class = dropout_prob > 0  # fixed at construction: the table's rows
        self.embedding = keras.layers.Embedding(
            num_classes + int(self.has_null_class), hidden_size,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=0.02), name="embedding",
        )

    @property
    def num_tokens(self):
        return 1

    @property
    def names(self):
        return self.label_names or [str(label) for label in range(self.num_classes)]

    def null_condition(self, batch_size):
        if not self.has_null_class:
            raise ValueError(
                "This class conditioner has no null class (dropout_prob=0); build it with dropout_prob > 0 "
                "to use classifier-free guidance."
            )
        return np.full((batch_size,), self.num_classes, dtype="int32")

    def every_condition(self):
        return np.arange(self.num_classes, dtype="int32")

    def captions(self, condition):
        names = self.names + ["<null>"]
        return [names[label] for label in np.asarray(condition).tolist()]

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
               " (this model has no label names: it was built without label_names)")
            + "."
        )

    def validate(self, values):
        null = f", {self.num_classes} = the null class" if self.has_null_class else ""
        check_labels(values, self.num_classes - 1 + int(self.has_null_class), "Class labels",
                     hint=f"{self.num_classes} classes{null}")

    def build(self, input_shape):
        self.embedding.build(input_shape)

    def embed(self, labels):
        vector = self.embedding(ops.cast(labels, "int32"))  # (B, D)
        return vector, vector[:, None, :]

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "label_names": self.label_names}


@keras.saving.register_keras_serializable(package="keras_dit")
class ClassLabelEmbedding(ClassConditioner):
    """A ``ClassConditioner`` whose table is its own weight: the layout of DiT's label table before DiT used
    ``ClassConditioner``. ``DiT.from_config`` builds one for such ``.keras`` files, whose weights sit at
    ``class_label_embedding/vars/0`` (``tests/models/test_dit_conditioner.py`` loads one)."""

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.num_classes + int(self.has_null_class), self.hidden_size),
            initializer=keras.initializers.RandomNormal(stddev=0.02), name="embeddings",
        )

    def embed(self, labels):
        vector = ops.take(self.embeddings, ops.cast(labels, "int32"), axis=0)  # (B, D)
        return vector, vector[:, None, :]
