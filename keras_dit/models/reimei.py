"""ReiMei: the MM-DiT-family backbone of the Alphabet-challenge winner, with expert-choice MoE.

Image patches (no additive position embedding: 2D axial RoPE in every attention) first pass through token-mixer
blocks that see only image tokens, then double-stream blocks (separate image / condition weights, joint
attention), then single-stream blocks over the concatenated sequence. Every block is adaLN-Zero modulated by
``timestep embedding + condition vector``; queries and keys are RMS-normalised. The MLP width grows linearly
with depth (MicroDiT's layer-wise scaling), and every ``moe_every``-th block of the double / single stack uses an
expert-choice Mixture-of-Experts MLP. Modulation and attention projections can be shared across blocks to save
parameters.
"""

import keras
from keras import ops

from keras_dit.layers.dit_block import FinalLayer
from keras_dit.layers.mmdit_block import AttentionProjections, MMDiTBlock
from keras_dit.layers.modulation import AdaLNModulation
from keras_dit.layers.patch_embedding import PatchEmbedding, unpatchify
from keras_dit.layers.remat import remat_call
from keras_dit.layers.rope import grid_positions, rope_tables
from keras_dit.layers.timestep_embedding import TimestepEmbedding
from keras_dit.models.conditioned_backbone import ConditionedBackbone, image_inputs, make_conditioner
from keras_dit.validation import check_divisible, check_int, check_positive, check_sizes

_COMMON = dict(num_mixer_layers=2, mlp_ratio=(2.0, 4.0), capacity_factor=2.0, shared_experts=1)
REIMEI_PRESETS = {
    # The Alphabet challenge: 64 x 64 RGB images described by 27 parameters.
    "ReiMei-Alphabet": dict(
        _COMMON, input_size=64, patch_size=4, in_channels=3, hidden_size=256, num_heads=4, num_double_layers=2,
        num_single_layers=6, num_experts=4, conditioner={"kind": "parameters", "num_parameters": 27},
    ),
    # ImageNet 256 in an f8 latent space (32 x 32 x 4), 1000 classes.
    "ReiMei-S/2": dict(
        _COMMON, input_size=32, patch_size=2, in_channels=4, hidden_size=384, num_heads=6, num_double_layers=4,
        num_single_layers=8, num_experts=8, num_classes=1000,
    ),
    "ReiMei-B/2": dict(
        _COMMON, input_size=32, patch_size=2, in_channels=4, hidden_size=768, num_heads=12, num_double_layers=6,
        num_single_layers=12, num_experts=8, num_classes=1000,
    ),
}


def _mlp_ratios(mlp_ratio, count):
    """Per-block MLP ratios: a constant, or a (first, last) pair interpolated linearly over ``count`` blocks."""
    if isinstance(mlp_ratio, (int, float)):
        return [float(mlp_ratio)] * count
    first, last = mlp_ratio
    return [first + (last - first) * i / max(count - 1, 1) for i in range(count)]


@keras.saving.register_keras_serializable(package="keras_dit")
class ReiMeiTransformer(keras.layers.Layer):
    """ReiMei's block stack: token mixers, double-stream then single-stream ``MMDiTBlock``s.

    It is one layer so that blocks can share modulation and attention-projection layers (which a functional
    graph cannot pass between layers); see ``ReiMei`` for the arguments.

    Call arguments:
        image: (B, T, D) image tokens in row-major grid order; c: (B, D) adaLN condition;
        cond: (B, L, D) condition tokens or ``None``. Returns (B, T, D).
    """

    def __init__(
        self, hidden_size, num_heads, grid_size, num_mixer_layers, num_double_layers, num_single_layers,
        mlp_ratio=4.0, num_experts=0, capacity_factor=2.0, shared_experts=1, moe_every=2, shared_modulation=False,
        shared_attention=False, rope_theta=10000.0, norm_eps=1e-6, remat=False, **kwargs,
    ):
        super().__init__(**kwargs)
        check_divisible("hidden_size", hidden_size, "num_heads", num_heads)
        if num_experts:
            check_int("moe_every", moe_every, hint="every moe_every-th block is a MoE block")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.grid_size = tuple(grid_size)
        self.num_mixer_layers = num_mixer_layers
        self.num_double_layers = num_double_layers
        self.num_single_layers = num_single_layers
        self.mlp_ratio = mlp_ratio if isinstance(mlp_ratio, (int, float)) else list(mlp_ratio)
        self.num_experts = num_experts
        self.capacity_factor = capacity_factor
        self.shared_experts = shared_experts
        self.moe_every = moe_every
        self.shared_modulation = shared_modulation
        self.shared_attention = shared_attention
        self.rope_theta = rope_theta
        self.norm_eps = norm_eps
        self.remat = remat
        cos, sin = rope_tables(grid_positions(*self.grid_size), hidden_size // num_heads, rope_theta)
        self.rope_cos, self.rope_sin = cos, sin  # (T, Dh / 2) constants, rebuilt from the config

        d, heads = hidden_size, num_heads
        total = num_mixer_layers + num_double_layers + num_single_layers
        widths = [int(d * ratio) for ratio in _mlp_ratios(mlp_ratio, total)]
        self.double_modulation = self.single_modulation = None
        if shared_modulation:
            self.double_modulation = AdaLNModulation(d, 12, name="double_modulation")
            self.single_modulation = AdaLNModulation(d, 6, name="single_modulation")
        double_attn = single_attn = None
        if shared_attention:
            double_attn = (AttentionProjections(d, heads, norm_eps, name="double_image_attn"),
                           AttentionProjections(d, heads, norm_eps, name="double_cond_attn"))
            single_attn = (AttentionProjections(d, heads, norm_eps, name="single_attn"), None)
        self.shared_layers = [layer for pair in (double_attn or (), single_attn or ()) for layer in pair if layer]

        def block(i, double, attention, name, moe_index=None):
            moe_block = moe_index is not None and moe_index % moe_every == moe_every - 1
            experts = num_experts if num_experts and moe_block else 0
            return MMDiTBlock(
                d, heads, widths[i], double_stream=double, num_experts=experts, capacity_factor=capacity_factor,
                shared_experts=shared_experts, shared_modulation=shared_modulation, attention=attention,
                norm_eps=norm_eps, name=name,
            )

        first_double, first_single = num_mixer_layers, num_mixer_layers + num_double_layers
        self.mixers = [block(i, False, None, f"mixer_{i}") for i in range(num_mixer_layers)]
        self.double_blocks = [
            block(first_double + i, True, double_attn, f"double_block_{i}", i) for i in range(num_double_layers)
        ]
        self.single_blocks = [
            block(first_single + i, False, single_attn, f"single_block_{i}", num_double_layers + i)
            for i in range(num_single_layers)
        ]

    def build(self, image_shape, c_shape=None, cond_shape=None):
        d = self.hidden_size
        for layer in (self.double_modulation, self.single_modulation):
            if layer is not None:
                layer.build((None, d))
        for layer in self.shared_layers:
            layer.build((None, None, d))
        cond = None if cond_shape is None else (None, None, d)
        for block in self.mixers:
            block.build((None, None, d), None, (None, d))
        for block in self.double_blocks + self.single_blocks:
            block.build((None, None, d), cond, (None, d))

    def call(self, image, c, cond=None):
        cos, sin = ops.convert_to_tensor(self.rope_cos), ops.convert_to_tensor(self.rope_sin)
        double_mods = self.double_modulation(c) if self.double_modulation is not None else None
        single_mods = self.single_modulation(c) if self.single_modulation is not None else None
        run = remat_call if self.remat else (lambda block, *args: block(*args))
        for block in self.mixers:
            image = run(block, image, None, c, cos, sin, single_mods)
        for block in self.double_blocks:
            out = run(block, image, cond, c, cos, sin, double_mods)
            image, cond = out if cond is not None else (out, None)
        for block in self.single_blocks:
            out = run(block, image, cond, c, cos, sin, single_mods)
            image, cond = out if cond is not None else (out, None)
        return image

    def compute_output_shape(self, image_shape, c_shape=None, cond_shape=None):
        return image_shape

    def get_config(self):
        return {
            **super().get_config(),
            **{key: getattr(self, key) for key in (
                "hidden_size", "num_heads", "grid_size", "num_mixer_layers", "num_double_layers",
                "num_single_layers", "mlp_ratio", "num_experts", "capacity_factor", "shared_experts", "moe_every",
                "shared_modulation", "shared_attention", "rope_theta", "norm_eps", "remat",
            )},
        }


@keras.saving.register_keras_serializable(package="keras_dit")
class ReiMei(ConditionedBackbone):
    """ReiMei backbone (MM-DiT with token mixers, 2D RoPE, QK RMSNorm and expert-choice MoE).

    Args:
        input_size, patch_size, in_channels: square input side, patch side (must divide it) and channels.
        hidden_size, num_heads: width and heads (head width divisible by 4 for 2D RoPE).
        num_mixer_layers, num_double_layers, num_single_layers: blocks of each kind, in that order.
        mlp_ratio: MLP expansion; a (first, last) pair grows it linearly with depth.
        num_experts: routed experts of the MoE MLPs; 0 uses dense MLPs everywhere.
        capacity_factor: MoE capacity (each expert takes ``tokens * capacity_factor / num_experts`` tokens).
        shared_experts: always-active experts in each MoE MLP.
        moe_every: every ``moe_every``-th double / single block has the MoE MLP (2: every other block).
        shared_modulation: one adaLN layer per block kind plus per-block offsets (adaLN-single).
        shared_attention: one set of attention projections per block kind, shared by all its blocks.
        rope_theta: RoPE base period.
        num_classes, class_dropout_prob, conditioner, seed: the condition, as in ``UViT``; the conditioner's vector
            joins the timestep embedding and its tokens the joint attention.
        norm_eps: epsilon of LayerNorms and q/k RMSNorms.
        remat: gradient checkpointing per block (less training memory, same outputs).

    Call arguments:
        inputs: dict with ``"x"`` (B, H, W, C), ``"t"`` (B,) and ``"condition"`` (raw condition; omit when
            unconditional). Returns (B, H, W, C).

    Example:
    >>> model = ReiMei.from_preset("ReiMei-Alphabet", input_size=16, hidden_size=32, num_heads=2)
    >>> y = model({"x": np.zeros((2, 16, 16, 3)), "t": np.array([1.0, 500.0]), "condition": np.random.rand(2, 27)})
    """

    presets = REIMEI_PRESETS

    def __init__(
        self,
        input_size,
        patch_size,
        in_channels,
        hidden_size,
        num_heads,
        num_mixer_layers=2,
        num_double_layers=2,
        num_single_layers=4,
        mlp_ratio=4.0,
        num_experts=0,
        capacity_factor=2.0,
        shared_experts=1,
        moe_every=2,
        shared_modulation=False,
        shared_attention=False,
        rope_theta=10000.0,
        num_classes=None,
        class_dropout_prob=0.1,
        conditioner=None,
        norm_eps=1e-6,
        seed=None,
        remat=False,
        **kwargs,
    ):
        check_sizes(input_size=input_size, patch_size=patch_size, in_channels=in_channels, hidden_size=hidden_size,
                    num_heads=num_heads, num_mixer_layers=(num_mixer_layers, 0),
                    num_double_layers=(num_double_layers, 0), num_single_layers=num_single_layers)
        for ratio in _mlp_ratios(mlp_ratio, 2):  # a number, or the (first, last) pair
            check_positive("mlp_ratio", ratio)
        check_divisible("input_size", input_size, "patch_size", patch_size)
        grid = input_size // patch_size
        trunk = ReiMeiTransformer(
            hidden_size, num_heads, (grid, grid), num_mixer_layers, num_double_layers, num_single_layers, mlp_ratio,
            num_experts, capacity_factor, shared_experts, moe_every, shared_modulation, shared_attention,
            rope_theta, norm_eps, remat, name="transformer",
        )
        cond_layer = make_conditioner(conditioner, hidden_size, num_classes, class_dropout_prob, seed)
        inputs = image_inputs(input_size, in_channels, cond_layer)

        image = PatchEmbedding(patch_size, hidden_size, name="patch_embedding")(inputs["x"])  # (B, T, D)
        c = TimestepEmbedding(hidden_size, name="timestep_embedding")(inputs["t"])  # (B, D)
        if cond_layer is not None:
            vector, cond_tokens = cond_layer(inputs["condition"])  # (B, D), (B, L, D)
            image = trunk(image, c + vector, cond_tokens)
            c = c + vector
        else:
            image = trunk(image, c)
        tokens = FinalLayer(hidden_size, patch_size, in_channels, norm_eps, name="final_layer")(image, c)
        outputs = unpatchify(tokens, (grid, grid), patch_size, in_channels)  # (B, H, W, C)

        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.transformer = trunk
        self._finish(cond_layer, dict(
            input_size=input_size, patch_size=patch_size, in_channels=in_channels, hidden_size=hidden_size,
            num_heads=num_heads, num_mixer_layers=num_mixer_layers, num_double_layers=num_double_layers,
            num_single_layers=num_single_layers, mlp_ratio=trunk.mlp_ratio, num_experts=num_experts,
            capacity_factor=capacity_factor, shared_experts=shared_experts, moe_every=moe_every,
            shared_modulation=shared_modulation, shared_attention=shared_attention, rope_theta=rope_theta,
            num_classes=num_classes, class_dropout_prob=class_dropout_prob, conditioner=conditioner,
            norm_eps=norm_eps, seed=seed, remat=remat,
        ))
