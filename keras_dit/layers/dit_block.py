"""The DiT transformer block with adaLN-Zero conditioning, and DiT's final layer."""

import keras

from keras_dit.backend import materialized
from keras_dit.layers.attention import SelfAttention
from keras_dit.layers.mlp import feed_forward
from keras_dit.layers.modulation import AdaLNModulation, gated_residual, modulate


def plain_layer_norm(epsilon, name):
    """LayerNorm without a learned affine: adaLN supplies the scale and shift. Its float32 output is modulated
    in float32 under mixed precision (the next Dense casts it back to the compute dtype)."""
    return keras.layers.LayerNormalization(epsilon=epsilon, center=False, scale=False, dtype="float32", name=name)


NORM_TYPES = ("layer", "rms")


def token_norm(norm_type, epsilon, name, affine=False):
    """A block's token normalisation: ``"layer"`` (LayerNorm; without affine when adaLN modulates it) or ``"rms"``
    (RMSNorm with a learned scale, LightningDiT's choice: no mean subtraction, no shift). Without ``affine`` it
    computes in float32, as ``plain_layer_norm``."""
    if norm_type not in NORM_TYPES:
        raise ValueError(f"Unknown norm_type {norm_type!r}; expected one of {list(NORM_TYPES)}.")
    dtype = None if affine else "float32"
    if norm_type == "rms":
        return keras.layers.RMSNormalization(epsilon=epsilon, dtype=dtype, name=name)
    if affine:
        return keras.layers.LayerNormalization(epsilon=epsilon, name=name)
    return plain_layer_norm(epsilon, name)


@keras.saving.register_keras_serializable(package="keras_dit")
class DiTBlock(keras.layers.Layer):
    """Attention and MLP residual branches, each normalised, modulated and gated by the condition.

    Args:
        hidden_size, num_heads, mlp_ratio: width, heads and MLP expansion.
        norm_eps: epsilon of the attention-branch LayerNorm (1e-6 in DiT).
        mlp_norm_eps: epsilon of the MLP-branch LayerNorm; ``None`` means ``norm_eps``
            (diffusers' DiT uses 1e-5 there).
        norm_type: ``"layer"`` (DiT) or ``"rms"`` (RMSNorm), see ``token_norm``.
        mlp_type: ``"gelu"`` (DiT) or ``"swiglu"``, see ``kd.layers.feed_forward``.
        qk_norm, rope_grid: QK RMSNorm and 2D RoPE over a ``(rows, cols)`` token grid, see ``SelfAttention``.

    Call arguments:
        x: (B, T, D) tokens; c: (B, D) condition vector. Returns (B, T, D).
    """

    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0, norm_eps=1e-6, mlp_norm_eps=None, norm_type="layer",
                 mlp_type="gelu", qk_norm=False, rope_grid=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.norm_eps = norm_eps
        self.mlp_norm_eps = mlp_norm_eps
        self.norm_type = norm_type
        self.mlp_type = mlp_type
        self.qk_norm = qk_norm
        self.rope_grid = None if rope_grid is None else tuple(rope_grid)
        self.norm1 = token_norm(norm_type, norm_eps, "norm1")
        self.attn = SelfAttention(hidden_size, num_heads, qk_norm=qk_norm, rope_grid=rope_grid, norm_eps=norm_eps,
                                  name="attn")
        self.norm2 = token_norm(norm_type, norm_eps if mlp_norm_eps is None else mlp_norm_eps, "norm2")
        self.mlp = feed_forward(mlp_type, hidden_size, mlp_ratio, "mlp")
        self.modulation = AdaLNModulation(hidden_size, 6, name="modulation")

    def build(self, x_shape, c_shape=None):
        tokens = (None, None, self.hidden_size)
        for layer in (self.norm1, self.attn, self.norm2, self.mlp):
            layer.build(tokens)
        self.modulation.build((None, self.hidden_size))

    def call(self, x, c):
        x = materialized(x)  # one stored residual per block: see backend.materialized
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.modulation(c)
        x = gated_residual(x, gate_msa, self.attn(modulate(self.norm1(x), shift_msa, scale_msa)))
        return gated_residual(x, gate_mlp, self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp)))

    def compute_output_shape(self, x_shape, c_shape=None):
        return x_shape

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "norm_eps": self.norm_eps,
            "mlp_norm_eps": self.mlp_norm_eps,
            "norm_type": self.norm_type,
            "mlp_type": self.mlp_type,
            "qk_norm": self.qk_norm,
            "rope_grid": self.rope_grid,
        }


@keras.saving.register_keras_serializable(package="keras_dit")
class FinalLayer(keras.layers.Layer):
    """Modulated LayerNorm (or RMSNorm, ``norm_type="rms"``) then a zero-initialised projection to
    ``p * p * out_channels`` per token.

    It computes in float32 under any policy (pass ``dtype`` to override), so a backbone's prediction, which the
    diffusion loss compares with float32 targets, is float32 under mixed precision.
    """

    def __init__(self, hidden_size, patch_size, out_channels, norm_eps=1e-6, norm_type="layer", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.patch_size = patch_size
        self.out_channels = out_channels
        self.norm_eps = norm_eps
        self.norm_type = norm_type
        self.norm = token_norm(norm_type, norm_eps, "norm")
        self.modulation = AdaLNModulation(hidden_size, 2, dtype=self.dtype_policy, name="modulation")
        self.linear = keras.layers.Dense(
            patch_size * patch_size * out_channels, kernel_initializer="zeros", dtype=self.dtype_policy, name="linear"
        )

    def build(self, x_shape, c_shape=None):
        self.norm.build((None, None, self.hidden_size))
        self.modulation.build((None, self.hidden_size))
        self.linear.build((None, None, self.hidden_size))

    def call(self, x, c):
        shift, scale = self.modulation(c)
        return self.linear(modulate(self.norm(x), shift, scale))

    def compute_output_shape(self, x_shape, c_shape=None):
        return (*x_shape[:-1], self.patch_size * self.patch_size * self.out_channels)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "patch_size": self.patch_size,
            "out_channels": self.out_channels,
            "norm_eps": self.norm_eps,
            "norm_type": self.norm_type,
        }
