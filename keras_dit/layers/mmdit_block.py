"""MM-DiT blocks (SD3 / Flux family): joint attention of image and condition tokens, QK RMSNorm, 2D RoPE.

A *double-stream* block keeps separate weights (norms, q/k/v, output projection, MLP, modulation) for the image
and the condition tokens and lets both attend to the concatenated sequence; a *single-stream* block runs one
set of weights over the concatenation. A single-stream block given no condition tokens is a plain adaLN block
over image tokens (ReiMei's token mixer). RoPE rotates only the image tokens' queries and keys.
"""

import keras
from keras import ops

from keras_dit.backend import materialized
from keras_dit.layers.attention import dot_product_attention
from keras_dit.layers.dit_block import plain_layer_norm
from keras_dit.layers.mlp import Mlp
from keras_dit.layers.modulation import AdaLNModulation, gated_residual, modulate
from keras_dit.layers.moe import ExpertChoiceMoE
from keras_dit.layers.rope import apply_rope_to_tail
from keras_dit.validation import check_divisible


@keras.saving.register_keras_serializable(package="keras_dit")
class AttentionProjections(keras.layers.Layer):
    """One token stream's q/k/v projection (with RMSNorm on q and k per head) and output projection.

    Args:
        hidden_size: width D; must be divisible by ``num_heads``.
        num_heads: attention heads.
        norm_eps: epsilon of the q/k RMSNorms.

    Call arguments:
        x: (B, T, D) tokens. Returns ``(q, k, v)``, each (B, T, H, D / H). ``output(o)`` projects the
        (B, T, H, D / H) attention output back to (B, T, D).
    """

    def __init__(self, hidden_size, num_heads, norm_eps=1e-6, **kwargs):
        super().__init__(**kwargs)
        check_divisible("hidden_size", hidden_size, "num_heads", num_heads)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.norm_eps = norm_eps
        self.head_dim = hidden_size // num_heads
        self.qkv = keras.layers.Dense(3 * hidden_size, name="qkv")
        self.q_norm = keras.layers.RMSNormalization(epsilon=norm_eps, name="q_norm")
        self.k_norm = keras.layers.RMSNormalization(epsilon=norm_eps, name="k_norm")
        self.proj = keras.layers.Dense(hidden_size, name="proj")

    def build(self, input_shape):
        self.qkv.build((None, None, self.hidden_size))
        self.q_norm.build((None, None, self.num_heads, self.head_dim))
        self.k_norm.build((None, None, self.num_heads, self.head_dim))
        self.proj.build((None, None, self.hidden_size))

    def call(self, x):
        qkv = ops.reshape(self.qkv(x), (-1, x.shape[1], 3, self.num_heads, self.head_dim))  # (B, T, 3, H, Dh)
        return self.q_norm(qkv[:, :, 0]), self.k_norm(qkv[:, :, 1]), qkv[:, :, 2]

    def output(self, o):
        return self.proj(ops.reshape(o, (-1, o.shape[1], self.hidden_size)))

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "norm_eps": self.norm_eps,
        }


@keras.saving.register_keras_serializable(package="keras_dit")
class MMDiTBlock(keras.layers.Layer):
    """An adaLN-Zero block over image tokens and (optionally) condition tokens with joint attention.

    Args:
        hidden_size, num_heads: width and heads.
        mlp_hidden_size: hidden width of the MLPs (per block, so widths can grow with depth).
        double_stream: separate weights for the condition tokens (True) or one shared set (False).
        num_experts: 0 for a dense image MLP; else an ``ExpertChoiceMoE`` with ``capacity_factor`` and
            ``shared_experts`` replaces it (over all tokens in a single-stream block).
        shared_modulation: the modulation comes from a layer shared across blocks (passed to ``call`` as
            ``shared_mods``) plus this block's learned offset (adaLN-single, PixArt-alpha), instead of this
            block's own adaLN layer.
        attention: optional ``(image, condition)`` ``AttentionProjections`` owned by the caller and shared across
            blocks; the caller's config rebuilds them, so they are not part of this block's config.
        norm_eps: epsilon of the LayerNorms and the q/k RMSNorms.

    Call arguments:
        image: (B, T, D) image tokens. cond: (B, L, D) condition tokens or ``None``. c: (B, D) adaLN condition.
        rope_cos, rope_sin: (T, Dh / 2) RoPE tables of the image tokens. shared_mods: the shared modulation's
        outputs (with ``shared_modulation=True``). Returns the new image tokens, or ``(image, cond)`` when
        ``cond`` is given.
    """

    def __init__(
        self, hidden_size, num_heads, mlp_hidden_size, double_stream=True, num_experts=0, capacity_factor=2.0,
        shared_experts=1, shared_modulation=False, attention=None, norm_eps=1e-6, **kwargs,
    ):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.mlp_hidden_size = mlp_hidden_size
        self.double_stream = double_stream
        self.num_experts = num_experts
        self.capacity_factor = capacity_factor
        self.shared_experts = shared_experts
        self.shared_modulation = shared_modulation
        self.norm_eps = norm_eps
        self.num_chunks = 12 if double_stream else 6
        attention = attention or (
            AttentionProjections(hidden_size, num_heads, norm_eps, name="image_attn"),
            AttentionProjections(hidden_size, num_heads, norm_eps, name="cond_attn") if double_stream else None,
        )
        self.image_attn, self.cond_attn = attention
        self.norm1 = plain_layer_norm(norm_eps, "norm1")
        self.norm2 = plain_layer_norm(norm_eps, "norm2")
        if num_experts:
            self.image_mlp = ExpertChoiceMoE(
                hidden_size, mlp_hidden_size, num_experts, capacity_factor, shared_experts, name="image_mlp"
            )
        else:
            self.image_mlp = Mlp(hidden_size, mlp_hidden_size, name="image_mlp")
        self.cond_mlp = Mlp(hidden_size, mlp_hidden_size, name="cond_mlp") if double_stream else None
        self.modulation = (None if shared_modulation
                           else AdaLNModulation(hidden_size, self.num_chunks, name="modulation"))

    def build(self, image_shape, cond_shape=None, c_shape=None, rope_cos_shape=None, rope_sin_shape=None,
              shared_mods_shape=None):
        tokens = (None, None, self.hidden_size)
        for layer in (self.image_attn, self.cond_attn, self.norm1, self.norm2, self.image_mlp, self.cond_mlp):
            if layer is not None and not layer.built:
                layer.build(tokens)
        if self.modulation is not None:
            self.modulation.build((None, self.hidden_size))
        else:
            self.modulation_offset = self.add_weight(
                shape=(self.num_chunks, self.hidden_size), initializer="zeros", name="modulation_offset"
            )

    def _modulations(self, c, shared_mods):
        if self.modulation is not None:
            return self.modulation(c)
        if shared_mods is None:
            raise ValueError(f"MMDiTBlock {self.name!r} uses shared modulation; pass shared_mods.")
        # float32 as a block's own AdaLNModulation (a layer call casts the shared ones to its compute dtype)
        offsets = ops.cast(self.modulation_offset, "float32")
        return [ops.cast(mod, "float32") + offsets[i] for i, mod in enumerate(shared_mods)]

    def call(self, image, cond=None, c=None, rope_cos=None, rope_sin=None, shared_mods=None):
        mods = self._modulations(c, shared_mods)
        image = materialized(image)  # one stored residual per block: see backend.materialized
        cond = None if cond is None else materialized(cond)
        image_mods = mods[:6]
        cond_mods = mods[6:] if self.double_stream else mods[:6]
        length = 0 if cond is None else cond.shape[1]

        def attend(q, k, v):
            if rope_cos is not None:  # rotate the image part (after the condition tokens)
                q, k = apply_rope_to_tail(q, rope_cos, rope_sin), apply_rope_to_tail(k, rope_cos, rope_sin)
            return dot_product_attention(q, k, v)  # (B, L + T, H, Dh)

        if cond is not None and self.double_stream:
            xi = modulate(self.norm1(image), image_mods[0], image_mods[1])
            xc = modulate(self.norm1(cond), cond_mods[0], cond_mods[1])
            (qi, ki, vi), (qc, kc, vc) = self.image_attn(xi), self.cond_attn(xc)
            o = attend(*(ops.concatenate(pair, axis=1) for pair in ((qc, qi), (kc, ki), (vc, vi))))
            image = gated_residual(image, image_mods[2], self.image_attn.output(o[:, length:]))
            cond = gated_residual(cond, cond_mods[2], self.cond_attn.output(o[:, :length]))
            image = gated_residual(
                image, image_mods[5], self.image_mlp(modulate(self.norm2(image), image_mods[3], image_mods[4]))
            )
            cond = gated_residual(
                cond, cond_mods[5], self.cond_mlp(modulate(self.norm2(cond), cond_mods[3], cond_mods[4]))
            )
            return image, cond
        x = image if cond is None else ops.concatenate([cond, image], axis=1)  # (B, L + T, D)
        o = attend(*self.image_attn(modulate(self.norm1(x), image_mods[0], image_mods[1])))
        x = gated_residual(x, image_mods[2], self.image_attn.output(o))
        x = gated_residual(x, image_mods[5], self.image_mlp(modulate(self.norm2(x), image_mods[3], image_mods[4])))
        return x if cond is None else (x[:, length:], x[:, :length])

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "mlp_hidden_size": self.mlp_hidden_size,
            "double_stream": self.double_stream,
            "num_experts": self.num_experts,
            "capacity_factor": self.capacity_factor,
            "shared_experts": self.shared_experts,
            "shared_modulation": self.shared_modulation,
            "norm_eps": self.norm_eps,
        }
