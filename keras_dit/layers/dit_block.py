"""The DiT transformer block with adaLN-Zero conditioning, and DiT's final layer."""

import keras

from keras_dit.backend import materialized
from keras_dit.layers.attention import SelfAttention
from keras_dit.layers.mlp import Mlp
from keras_dit.layers.modulation import AdaLNModulation, gated_residual, modulate


def plain_layer_norm(epsilon, name):
    """LayerNorm without a learned affine: adaLN supplies the scale and shift. Its float32 output is modulated
    in float32 under mixed precision (the next Dense casts it back to the compute dtype)."""
    return keras.layers.LayerNormalization(epsilon=epsilon, center=False, scale=False, dtype="float32", name=name)


@keras.saving.register_keras_serializable(package="keras_dit")
class DiTBlock(keras.layers.Layer):
    """Attention and MLP residual branches, each normalised, modulated and gated by the condition.

    Args:
        hidden_size, num_heads, mlp_ratio: width, heads and MLP expansion.
        norm_eps: epsilon of the attention-branch LayerNorm (1e-6 in DiT).
        mlp_norm_eps: epsilon of the MLP-branch LayerNorm; ``None`` means ``norm_eps``
            (diffusers' DiT uses 1e-5 there).

    Call arguments:
        x: (B, T, D) tokens; c: (B, D) condition vector. Returns (B, T, D).
    """

    def __init__(self, hidden_size, num_heads, mlp_ratio=4.0, norm_eps=1e-6, mlp_norm_eps=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.norm_eps = norm_eps
        self.mlp_norm_eps = mlp_norm_eps
        self.norm1 = plain_layer_norm(norm_eps, "norm1")
        self.attn = SelfAttention(hidden_size, num_heads, name="attn")
        self.norm2 = plain_layer_norm(norm_eps if mlp_norm_eps is None else mlp_norm_eps, "norm2")
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio), name="mlp")
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
        }


@keras.saving.register_keras_serializable(package="keras_dit")
class FinalLayer(keras.layers.Layer):
    """Modulated LayerNorm then a zero-initialised projection to ``p * p * out_channels`` per token.

    It computes in float32 under any policy (pass ``dtype`` to override), so a backbone's prediction, which the
    diffusion loss compares with float32 targets, is float32 under mixed precision.
    """

    def __init__(self, hidden_size, patch_size, out_channels, norm_eps=1e-6, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.patch_size = patch_size
        self.out_channels = out_channels
        self.norm_eps = norm_eps
        self.norm = plain_layer_norm(norm_eps, "norm")
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
        }
