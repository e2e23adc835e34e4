"""A plain pre-LayerNorm transformer block, optionally fed a long skip (U-ViT) or a key mask (tag encoder)."""

import keras
from keras import ops

from keras_dit.backend import materialized
from keras_dit.layers.attention import SelfAttention
from keras_dit.layers.dit_block import token_norm
from keras_dit.layers.mlp import feed_forward


@keras.saving.register_keras_serializable(package="keras_dit")
class TransformerBlock(keras.layers.Layer):
    """``x + attn(LN(x))`` then ``x + mlp(LN(x))``, without adaLN.

    With ``skip=True`` (U-ViT's deep half) the block first fuses a long-skip input from its shallow twin:
    ``x = Dense(concat([x, skip]))``.

    Args:
        hidden_size, num_heads, mlp_ratio: width, heads and MLP expansion.
        qkv_bias: bias on the q/k/v projection (False in U-ViT).
        skip: whether the block takes a long-skip input.
        norm_eps: LayerNorm epsilon.
        norm_type, mlp_type, qk_norm, rope_grid: RMSNorm, SwiGLU MLP, QK-norm and 2D RoPE on the last
            ``rows * cols`` tokens, as in ``DiTBlock`` (the defaults are the plain block).

    Call arguments:
        x: (B, T, D) tokens; skip: (B, T, D) long-skip tokens (only with ``skip=True``);
        key_mask: optional (B, T) boolean key mask. Returns (B, T, D).
    """

    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0, qkv_bias=False, skip=False, norm_eps=1e-5,
                 norm_type="layer", mlp_type="gelu", qk_norm=False, rope_grid=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.skip = skip
        self.norm_eps = norm_eps
        self.norm_type = norm_type
        self.mlp_type = mlp_type
        self.qk_norm = qk_norm
        self.rope_grid = None if rope_grid is None else tuple(rope_grid)
        self.skip_linear = keras.layers.Dense(hidden_size, name="skip_linear") if skip else None
        self.norm1 = token_norm(norm_type, norm_eps, "norm1", affine=True)
        self.attn = SelfAttention(hidden_size, num_heads, qkv_bias=qkv_bias, qk_norm=qk_norm, rope_grid=rope_grid,
                                  name="attn")
        self.norm2 = token_norm(norm_type, norm_eps, "norm2", affine=True)
        self.mlp = feed_forward(mlp_type, hidden_size, mlp_ratio, "mlp")

    def build(self, x_shape, skip_shape=None, key_mask_shape=None):
        tokens = (None, None, self.hidden_size)
        if self.skip_linear is not None:
            self.skip_linear.build((None, None, 2 * self.hidden_size))
        for layer in (self.norm1, self.attn, self.norm2, self.mlp):
            layer.build(tokens)

    def call(self, x, skip=None, key_mask=None):
        if self.skip_linear is not None:
            if skip is None:
                raise ValueError(f"TransformerBlock {self.name!r} was built with skip=True; pass the skip tokens.")
            x = self.skip_linear(ops.concatenate([x, skip], axis=-1))
        x = materialized(x)  # one stored residual per block: see backend.materialized
        x = x + self.attn(self.norm1(x), key_mask=key_mask)
        return x + self.mlp(self.norm2(x))

    def compute_output_shape(self, x_shape, skip_shape=None, key_mask_shape=None):
        return x_shape

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "qkv_bias": self.qkv_bias,
            "skip": self.skip,
            "norm_eps": self.norm_eps,
            "norm_type": self.norm_type,
            "mlp_type": self.mlp_type,
            "qk_norm": self.qk_norm,
            "rope_grid": self.rope_grid,
        }
