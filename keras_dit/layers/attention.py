"""Multi-head self-attention over tokens through ``keras.ops.dot_product_attention``."""

import keras
from keras import ops

from keras_dit.layers.rope import apply_rope_to_tail, grid_positions, rope_tables
from keras_dit.validation import check_divisible


def dot_product_attention(q, k, v, mask=None):
    """``ops.dot_product_attention`` over (B, T, H, Dh) tensors, with logits and softmax in float32.

    Half-precision (bfloat16 / float16) inputs are upcast for the attention and the result cast back, so mixed
    precision never takes a softmax in half precision on any backend.
    """
    dtype = keras.backend.standardize_dtype(q.dtype)
    if dtype not in ("bfloat16", "float16"):
        return ops.dot_product_attention(q, k, v, mask=mask)
    q, k, v = (ops.cast(tensor, "float32") for tensor in (q, k, v))
    return ops.cast(ops.dot_product_attention(q, k, v, mask=mask), dtype)


@keras.saving.register_keras_serializable(package="keras_dit")
class SelfAttention(keras.layers.Layer):
    """Multi-head self-attention with a fused q/k/v projection (one GEMM) and an output projection.

    Args:
        hidden_size: token width D; must be divisible by ``num_heads``.
        num_heads: number of heads.
        qkv_bias: whether the q/k/v projection has a bias (True in DiT).
        qk_norm: RMS-normalise queries and keys per head (learned scale) before the dot product, as LightningDiT
            and SD3 do: it bounds the attention logits, which keeps training stable at high learning rates.
        rope_grid: ``(rows, cols)`` of the image tokens for 2D axial rotary position embeddings on q and k
            (``kd.layers.rope``); they must be the *last* ``rows * cols`` tokens, earlier ones (time / condition
            tokens) are not rotated. ``None``: no RoPE. Needs a head width divisible by 4.
        rope_theta: RoPE base period.
        norm_eps: epsilon of the q/k RMSNorms.

    Call arguments:
        x: (B, T, D) tokens.
        key_mask: optional (B, T) boolean mask; False keys are not attended to. Returns (B, T, D).
    """

    def __init__(self, hidden_size, num_heads, qkv_bias=True, qk_norm=False, rope_grid=None, rope_theta=10000.0,
                 norm_eps=1e-6, **kwargs):
        super().__init__(**kwargs)
        check_divisible("hidden_size", hidden_size, "num_heads", num_heads)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.qkv_bias = qkv_bias
        self.qk_norm = qk_norm
        self.rope_grid = None if rope_grid is None else tuple(rope_grid)
        self.rope_theta = rope_theta
        self.norm_eps = norm_eps
        self.head_dim = hidden_size // num_heads
        self.qkv = keras.layers.Dense(3 * hidden_size, use_bias=qkv_bias, name="qkv")
        self.q_norm = self.k_norm = None
        if qk_norm:
            self.q_norm = keras.layers.RMSNormalization(epsilon=norm_eps, dtype="float32", name="q_norm")
            self.k_norm = keras.layers.RMSNormalization(epsilon=norm_eps, dtype="float32", name="k_norm")
        self.rope_cos = self.rope_sin = None
        if self.rope_grid is not None:  # (grid tokens, Dh / 2) constants, rebuilt from the config
            self.rope_cos, self.rope_sin = rope_tables(grid_positions(*self.rope_grid), self.head_dim, rope_theta)
        self.proj = keras.layers.Dense(hidden_size, name="proj")

    def build(self, input_shape):
        self.qkv.build((None, None, self.hidden_size))
        for norm in (self.q_norm, self.k_norm):
            if norm is not None:
                norm.build((None, None, self.num_heads, self.head_dim))
        self.proj.build((None, None, self.hidden_size))

    def call(self, x, key_mask=None):
        qkv = ops.reshape(self.qkv(x), (-1, x.shape[1], 3, self.num_heads, self.head_dim))  # (B, T, 3, H, Dh)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if self.q_norm is not None:  # float32 norms, cast back to the compute dtype
            q, k = ops.cast(self.q_norm(q), v.dtype), ops.cast(self.k_norm(k), v.dtype)
        if self.rope_cos is not None:
            q = apply_rope_to_tail(q, self.rope_cos, self.rope_sin)
            k = apply_rope_to_tail(k, self.rope_cos, self.rope_sin)
        if key_mask is not None:
            key_mask = ops.cast(key_mask, "bool")[:, None, None, :]  # (B, 1, 1, T): per key
        out = dot_product_attention(q, k, v, mask=key_mask)  # (B, T, H, Dh)
        return self.proj(ops.reshape(out, (-1, x.shape[1], self.hidden_size)))

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "qkv_bias": self.qkv_bias,
            "qk_norm": self.qk_norm,
            "rope_grid": self.rope_grid,
            "rope_theta": self.rope_theta,
            "norm_eps": self.norm_eps,
        }
