"""Multi-hot tag conditioning: a tag vocabulary encoded by a small Transformer over the tags present."""

import difflib

import keras
import numpy as np
from keras import ops

from keras_dit.conditioning.base import Conditioner, split_prompt
from keras_dit.layers.transformer_block import TransformerBlock
from keras_dit.validation import check_positive, check_sizes


@keras.saving.register_keras_serializable(package="keras_dit")
class TagConditioner(Conditioner):
    """(B, V) multi-hot tag vectors -> ``(vector (B, D), tokens (B, max_tags + 1, D))``.

    The present tags (at most ``max_tags`` per sample) are looked up in an embedding table, prefixed with a
    learned ``<cls>`` token and run through ``num_layers`` pre-LN Transformer blocks that attend only to
    present tags. The ``<cls>`` output is the vector; the outputs (``<cls>`` first, absent slots zeroed) are
    the tokens. Tags are unordered, so there is no position embedding.

    The null condition is the all-zero multi-hot vector: it maps to a learned null vector and null tokens.
    Hence a sample with no tags *is* the unconditional case; an empty prompt passed to ``encode`` is an error.

    Unknown tags are an **error** (``ValueError`` naming the tag and the closest vocabulary entries): a
    silently dropped tag would make the prompt mean something else without telling the user.

    Args:
        vocabulary: list of tag strings (unique).
        hidden_size: width D.
        num_layers, num_heads, mlp_ratio: the encoder (2 layers by default).
        max_tags: most tags per sample; default ``min(len(vocabulary), 32)``.
        dropout_prob: CFG condition-dropout rate.
        separator: separator of tags in a prompt string (``"blush, smile"``).
        seed: seed of the dropout.
    """

    description = "tag-conditional"
    fields = ("tags", "tag_vocabulary")

    def __init__(
        self, vocabulary, hidden_size, num_layers=2, num_heads=4, mlp_ratio=4.0, max_tags=None, dropout_prob=0.1,
        separator=",", seed=None, **kwargs,
    ):
        super().__init__(hidden_size, dropout_prob, seed, **kwargs)
        vocabulary = [str(tag).strip() for tag in vocabulary]
        if not vocabulary:
            raise ValueError("TagConditioner needs a non-empty vocabulary (a list of tag strings).")
        duplicates = sorted({tag for tag in vocabulary if vocabulary.count(tag) > 1})
        if duplicates:
            raise ValueError(f"Duplicate tags in the vocabulary: {duplicates}; each tag must appear once.")
        check_sizes(num_layers=(num_layers, 0), num_heads=num_heads)
        check_positive("mlp_ratio", mlp_ratio)
        max_tags = min(len(vocabulary), 32) if max_tags is None else max_tags
        if not 1 <= max_tags <= len(vocabulary):
            raise ValueError(f"max_tags must be in [1, {len(vocabulary)}] (the vocabulary size), got {max_tags}.")
        self.vocabulary = vocabulary
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.max_tags = max_tags
        self.separator = separator
        self.condition_shape = (len(vocabulary),)
        self._index = {tag: i for i, tag in enumerate(vocabulary)}
        self.blocks = [
            TransformerBlock(hidden_size, num_heads, mlp_ratio, qkv_bias=True, name=f"encoder_{i}")
            for i in range(num_layers)
        ]
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5, name="norm")

    @property
    def num_tokens(self):
        return self.max_tags + 1

    @property
    def names(self):
        return self.vocabulary

    def captions(self, condition):
        return [",".join(self.vocabulary[j] for j in np.flatnonzero(row)) for row in np.asarray(condition)]

    def null_condition(self, batch_size):
        return np.zeros((batch_size, len(self.vocabulary)), dtype="float32")

    def encode(self, condition):
        """Tags (one prompt string, or a list of prompts; a prompt is ``"a, b"`` or ``["a", "b"]``) -> (B, V).

        Example: ``encode(["blush, smile", "hat"])`` gives two multi-hot rows.
        """
        prompts = [condition] if isinstance(condition, str) else list(condition)
        rows = np.zeros((len(prompts), len(self.vocabulary)), dtype="float32")
        for row, prompt in zip(rows, prompts):
            tags = split_prompt(prompt, self.separator)
            if not tags:
                raise ValueError(
                    f"Empty tag prompt {prompt!r}; give at least one tag, or use null_condition() for an "
                    "unconditional sample."
                )
            for tag in tags:
                if tag not in self._index:
                    close = difflib.get_close_matches(tag, self.vocabulary, n=3)
                    raise ValueError(
                        f"Unknown tag {tag!r}: it is not in the vocabulary of {len(self.vocabulary)} tags"
                        + (f" (closest: {close})" if close else "") + ". Use tags from the vocabulary."
                    )
                row[self._index[tag]] = 1.0
        self.validate(rows)
        return rows

    encode_tags = encode

    def validate(self, values):
        if np.any((values != 0) & (values != 1)):
            raise ValueError("Multi-hot tag vectors must hold only 0 and 1.")
        most = int(values.sum(axis=-1).max())
        if most > self.max_tags:
            raise ValueError(
                f"A sample has {most} tags but this conditioner keeps at most max_tags={self.max_tags}; "
                "remove tags or build the conditioner with a larger max_tags."
            )

    def _shape_hint(self):
        return f"Pass multi-hot vectors over the {len(self.vocabulary)}-tag vocabulary, or tag strings."

    def build(self, input_shape):
        init = keras.initializers.RandomNormal(stddev=0.02)
        d = self.hidden_size
        self.tag_embeddings = self.add_weight(shape=(len(self.vocabulary), d), initializer=init, name="tag_embeddings")
        self.cls_token = self.add_weight(shape=(d,), initializer=init, name="cls_token")
        self.null_vector = self.add_weight(shape=(d,), initializer=init, name="null_vector")
        self.null_tokens = self.add_weight(shape=(self.num_tokens, d), initializer=init, name="null_tokens")
        for block in self.blocks:
            block.build((None, None, d))
        self.norm.build((None, None, d))

    def embed(self, multi_hot):
        multi_hot = ops.cast(multi_hot, "float32")
        batch = ops.shape(multi_hot)[0]
        present, indices = ops.top_k(multi_hot, self.max_tags)  # (B, K): present tags first
        present = present > 0.5
        tokens = ops.take(self.tag_embeddings, indices, axis=0)  # (B, K, D)
        cls = ops.broadcast_to(self.cls_token[None, None, :], (batch, 1, self.hidden_size))
        tokens = ops.concatenate([cls, tokens], axis=1)  # (B, K + 1, D)
        mask = ops.concatenate([ops.ones((batch, 1), dtype="bool"), present], axis=1)  # (B, K + 1)
        for block in self.blocks:
            tokens = block(tokens, key_mask=mask)
        tokens = self.norm(tokens) * ops.cast(mask, tokens.dtype)[:, :, None]
        is_null = ops.logical_not(ops.any(present, axis=1))  # (B,)
        vector = ops.where(is_null[:, None], self.null_vector[None], tokens[:, 0])
        tokens = ops.where(is_null[:, None, None], self.null_tokens[None], tokens)
        return vector, tokens

    def token_only_variables(self):
        return [self.null_tokens]

    def get_config(self):
        return {
            **super().get_config(),
            "vocabulary": self.vocabulary,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "max_tags": self.max_tags,
            "separator": self.separator,
        }
