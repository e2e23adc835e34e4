"""The conditioner contract shared by every condition kind, and the helpers backbones use to host one.

A conditioner is a Keras layer mapping a batch of *raw* conditions (integer labels, multi-hot tag vectors,
parameter vectors) to ``(vector, tokens)``: a (B, D) vector that backbones add to the timestep embedding for
adaLN, and (B, L, D) tokens for joint attention or in-context conditioning. Each backbone uses what it needs.

Every kind has a raw *null condition*, the input that means "nothing": label ``num_classes``, an all-zero
multi-hot vector, an all-NaN parameter vector. It maps to learned weights, so the unconditional branch of
classifier-free guidance is learned by replacing the raw condition with the null one with probability
``dropout_prob`` while training. Samplers build the unconditional batch with ``null_condition(batch_size)``,
and negative prompts with ``encode``.

Strings (``"seven"``, ``"blush, smile"``) cannot flow through a compiled graph; ``encode`` turns them into the
numeric raw condition first, and backbones call it for you (``prepare``) when a call gets Python values. The
vocabulary that strings refer to (class names, tags, parameter names: ``names``) is part of the conditioner's
config, so it is saved with the model.
"""

import keras
import numpy as np
from keras import ops

from keras_dit.backend import concrete_value
from keras_dit.validation import check_int


class Conditioner(keras.layers.Layer):
    """Base class: raw condition (B, *condition_shape) -> ``(vector (B, D), tokens (B, num_tokens, D))``.

    Subclasses define ``condition_shape``, ``condition_dtype``, ``num_tokens``, ``null_condition``,
    ``encode`` (Python values -> raw numeric condition), ``validate`` (checks concrete numeric values) and
    ``embed`` (raw condition -> vector, tokens); this class adds the CFG dropout. ``names``, ``fields``,
    ``every_condition`` and ``captions`` describe conditions to people (the command line's grids and files).

    Args:
        hidden_size: width D of the vector and tokens (the backbone's width).
        dropout_prob: probability of replacing a sample's condition by the null condition in training.
        seed: seed of the dropout's ``SeedGenerator``.
    """

    condition_shape = ()
    condition_dtype = "float32"
    description = "conditional"  # "This DiT is <description>"
    fields = ("condition", "condition_names")  # samples.npz keys of a batch of raw conditions and of ``names``

    def __init__(self, hidden_size, dropout_prob=0.1, seed=None, **kwargs):
        super().__init__(**kwargs)
        check_int("hidden_size", hidden_size)
        if not 0.0 <= dropout_prob < 1.0:
            raise ValueError(f"dropout_prob must be in [0, 1), got {dropout_prob}.")
        self.hidden_size = hidden_size
        self.dropout_prob = dropout_prob
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    @property
    def num_tokens(self):
        raise NotImplementedError

    @property
    def names(self):
        """The vocabulary saved with the conditioner (class names, tags, parameter names), or ``None``."""
        return None

    def null_condition(self, batch_size):
        """(batch_size, *condition_shape) raw conditions meaning "no condition"."""
        raise NotImplementedError

    def every_condition(self):
        """One raw condition per value where there are few (each class label), else ``None``."""
        return None

    def captions(self, condition):
        """A short text per raw condition of a batch (image grid captions, file names)."""
        return [f"#{i}" for i in range(len(condition))]

    def encode(self, condition):
        """Python / NumPy values (strings allowed) -> the NumPy raw condition, validated."""
        raise NotImplementedError

    def validate(self, values):
        """Raise ``ValueError`` if concrete raw condition ``values`` are not valid inputs."""

    def embed(self, condition):
        raise NotImplementedError

    def token_only_variables(self):
        """The variables that shape the tokens but not the vector (none here)."""
        return []

    def freeze_token_only_variables(self):
        """Stop training ``token_only_variables``, for a backbone that reads the vector alone (DiT): they would
        get no gradient, and Keras warns about each such variable at every step. They are still saved."""
        for variable in self.token_only_variables():
            variable.trainable = False

    def call(self, condition, training=False):
        if training and self.dropout_prob > 0:
            batch = ops.shape(condition)[0]
            drop = keras.random.uniform((batch,), seed=self.seed_generator) < self.dropout_prob
            drop = ops.reshape(drop, (-1,) + (1,) * len(self.condition_shape))
            null = ops.cast(self.null_condition(1), condition.dtype)
            condition = ops.where(drop, null, condition)
        return self.embed(condition)

    def compute_output_spec(self, condition, training=False):
        batch = condition.shape[0]
        return (
            keras.KerasTensor((batch, self.hidden_size), dtype=self.compute_dtype),
            keras.KerasTensor((batch, self.num_tokens, self.hidden_size), dtype=self.compute_dtype),
        )

    def prepare(self, condition, batch_size=None):
        """A call's raw ``condition`` checked (and encoded, if it holds strings) for a batch of ``batch_size``
        (``None``: any); a single string prompt is a batch of one.

        Checks the shape against ``condition_shape`` and, when values are concrete, their validity.
        """
        if _holds_strings(condition):
            condition = self.encode(condition)
        if isinstance(condition, (list, tuple, int, float, np.generic)):
            condition = np.asarray(condition, dtype=self.condition_dtype)
        shape = tuple(condition.shape)
        expected = (batch_size, *self.condition_shape)
        if len(shape) != len(expected) or shape[1:] != expected[1:] or (
            None not in (batch_size, shape[0]) and shape[0] != batch_size
        ):
            raise ValueError(
                f"{type(self).__name__} expects conditions of shape (B, {', '.join(map(str, self.condition_shape))})"
                f" with B={batch_size}; got shape {shape}. " + self._shape_hint()
            )
        values = concrete_value(condition)
        if values is not None and values.size:
            self.validate(values)
        return condition

    def _shape_hint(self):
        return ""

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "dropout_prob": self.dropout_prob,
            "seed": self.seed,
        }


def _holds_strings(condition):
    if isinstance(condition, str):
        return True
    if isinstance(condition, np.ndarray):
        return condition.dtype.kind in "USO"
    if isinstance(condition, (list, tuple)):
        return any(_holds_strings(c) for c in condition)
    return False


def split_prompt(prompt, separator=","):
    """``"blush, smile"`` -> ``["blush", "smile"]`` (stripped, empty pieces dropped); lists pass through."""
    if isinstance(prompt, str):
        return [piece.strip() for piece in prompt.split(separator) if piece.strip()]
    return [str(piece).strip() for piece in prompt]
