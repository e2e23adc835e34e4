"""U-ViT: All are Worth Words, a ViT Backbone for Diffusion Models (Bao et al., 2023), channels-last.

Everything is a token: the timestep, the condition and the image patches share one sequence with a learned
position embedding. ``depth = 2 n + 1`` pre-LN transformer blocks form a U: the output of each of the ``n``
shallow blocks feeds the deep block mirroring it through a long skip (concatenate + linear). A LayerNorm and a
linear layer map the patch tokens back to pixels, and a 3x3 convolution smooths the patch seams.
"""

import keras
from keras import ops

from keras_dit.layers.learned_position_embedding import LearnedPositionEmbedding
from keras_dit.layers.patch_embedding import PatchEmbedding, unpatchify
from keras_dit.layers.remat import remat_scope
from keras_dit.layers.timestep_embedding import TimestepEmbedding
from keras_dit.layers.transformer_block import TransformerBlock
from keras_dit.models.conditioned_backbone import ConditionedBackbone, image_inputs, make_conditioner
from keras_dit.validation import check_divisible, check_positive, check_sizes

# The paper's Table 1 sizes: (depth, hidden_size, num_heads), MLP ratio 4; each preset is a data set the paper
# trains that size on: CIFAR-10 pixels (S/2), ImageNet 64 pixels (M/4), ImageNet 256 latents (L/2, H/2).
_SIZES = {"S": (13, 512, 8), "S-Deep": (17, 512, 8), "M": (17, 768, 12), "L": (21, 1024, 16), "H": (29, 1152, 16)}
_DATA = {
    "cifar10": dict(input_size=32, in_channels=3, num_classes=10),
    "imagenet64": dict(input_size=64, in_channels=3, num_classes=1000),
    "imagenet256-latent": dict(input_size=32, in_channels=4, num_classes=1000),
}
UVIT_PRESETS = {
    f"UViT-{size}/{patch}": dict(
        **_DATA[data], patch_size=patch, depth=_SIZES[size][0], hidden_size=_SIZES[size][1],
        num_heads=_SIZES[size][2],
    )
    for size, patch, data in [
        ("S", 2, "cifar10"), ("S-Deep", 2, "cifar10"), ("M", 4, "imagenet64"), ("L", 2, "imagenet256-latent"),
        ("H", 2, "imagenet256-latent"),
    ]
}


@keras.saving.register_keras_serializable(package="keras_dit")
class UViT(ConditionedBackbone):
    """U-ViT backbone.

    Args:
        input_size, patch_size, in_channels: square input side, patch side (must divide it) and channels.
        hidden_size, depth, num_heads, mlp_ratio: width, number of blocks (odd: n shallow, 1 middle, n deep),
            heads and MLP expansion.
        qkv_bias: bias on the q/k/v projections (False in U-ViT).
        num_classes: shorthand for a class-label conditioner; ``None`` with no ``conditioner`` is unconditional.
        class_dropout_prob: CFG label dropout of that label conditioner.
        conditioner: any conditioner (kind name, dict or instance, see ``kd.conditioning.get_conditioner``);
            its tokens join the sequence. Exclusive with ``num_classes``.
        use_conv: end with the 3x3 convolution (True in U-ViT).
        seed: seed of the label dropout.
        remat: gradient checkpointing per transformer block (less training memory, same outputs).
        norm_type, mlp_type, qk_norm, rope: RMSNorm, SwiGLU MLP, QK-norm and 2D RoPE on the patch tokens (the time
            and condition tokens are not rotated), as in ``DiT``; the defaults are the paper's U-ViT.

    Call arguments:
        inputs: dict with ``"x"`` (B, H, W, C), ``"t"`` (B,) timesteps and ``"condition"`` (raw condition; omit
            when unconditional). Returns (B, H, W, C).

    Example:
    >>> model = UViT.from_preset("UViT-S/2", input_size=8, depth=3, hidden_size=32, num_heads=2)
    >>> y = model({"x": np.zeros((2, 8, 8, 3)), "t": np.array([1.0, 500.0]), "condition": np.array([3, 10])})
    """

    presets = UVIT_PRESETS

    def __init__(
        self,
        input_size,
        patch_size,
        in_channels,
        hidden_size,
        depth,
        num_heads,
        mlp_ratio=4.0,
        qkv_bias=False,
        num_classes=None,
        class_dropout_prob=0.1,
        conditioner=None,
        use_conv=True,
        seed=None,
        remat=False,
        norm_type="layer",
        mlp_type="gelu",
        qk_norm=False,
        rope=False,
        **kwargs,
    ):
        check_sizes(input_size=input_size, patch_size=patch_size, in_channels=in_channels, hidden_size=hidden_size,
                    depth=depth, num_heads=num_heads)
        check_positive("mlp_ratio", mlp_ratio)
        check_divisible("input_size", input_size, "patch_size", patch_size)
        if depth % 2 != 1:
            raise ValueError(f"U-ViT depth must be odd (n shallow + 1 middle + n deep blocks), got {depth}.")
        check_divisible("hidden_size", hidden_size, "num_heads", num_heads)
        grid = input_size // patch_size
        cond_layer = make_conditioner(conditioner, hidden_size, num_classes, class_dropout_prob, seed)
        inputs = image_inputs(input_size, in_channels, cond_layer)

        patches = PatchEmbedding(patch_size, hidden_size, name="patch_embedding")(inputs["x"])  # (B, T, D)
        time_token = TimestepEmbedding(hidden_size, name="timestep_embedding")(inputs["t"])[:, None, :]  # (B, 1, D)
        extras = [time_token]
        if cond_layer is not None:
            extras.append(cond_layer(inputs["condition"])[1])  # (B, L, D)
        num_extras = 1 + (cond_layer.num_tokens if cond_layer is not None else 0)
        tokens = ops.concatenate([*extras, patches], axis=1)  # (B, extras + T, D)
        tokens = LearnedPositionEmbedding(name="position_embedding")(tokens)

        half = depth // 2
        names = [f"in_block_{i}" for i in range(half)] + ["mid_block"] + [f"out_block_{i}" for i in range(half)]
        with remat_scope(remat, names):
            blocks = [
                TransformerBlock(hidden_size, num_heads, mlp_ratio, qkv_bias, skip=i > half, norm_type=norm_type,
                                 mlp_type=mlp_type, qk_norm=qk_norm, rope_grid=(grid, grid) if rope else None,
                                 name=name)
                for i, name in enumerate(names)
            ]
        skips = []
        for block in blocks[:half]:
            tokens = block(tokens)
            skips.append(tokens)
        tokens = blocks[half](tokens)
        for block in blocks[half + 1:]:
            tokens = block(tokens, skips.pop())
        # The output head computes in float32 under mixed precision: the loss compares it with float32 targets.
        norm = keras.layers.RMSNormalization if norm_type == "rms" else keras.layers.LayerNormalization
        tokens = norm(epsilon=1e-5, dtype="float32", name="norm")(tokens)
        decoder = keras.layers.Dense(patch_size * patch_size * in_channels, dtype="float32", name="decoder")
        outputs = unpatchify(decoder(tokens[:, num_extras:]), (grid, grid), patch_size, in_channels)  # (B, H, W, C)
        if use_conv:
            outputs = keras.layers.Conv2D(in_channels, 3, padding="same", dtype="float32", name="final_conv")(outputs)

        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._finish(cond_layer, dict(
            input_size=input_size, patch_size=patch_size, in_channels=in_channels, hidden_size=hidden_size,
            depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, num_classes=num_classes,
            class_dropout_prob=class_dropout_prob, conditioner=conditioner, use_conv=use_conv, seed=seed,
            remat=remat, norm_type=norm_type, mlp_type=mlp_type, qk_norm=qk_norm, rope=rope,
        ))
