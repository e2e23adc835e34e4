"""DiT: Scalable Diffusion Models with Transformers (Peebles & Xie, 2023), channels-last.

The layout follows the reference: patch embedding + fixed 2D sin-cos positions, a timestep embedder
(256 sinusoidal frequencies + MLP) summed with a class embedder (with a null class for CFG), ``depth``
adaLN-Zero blocks, a modulated final layer and unpatchify.
"""

import keras

from keras_dit.conditioning.class_labels import ClassLabelEmbedding
from keras_dit.layers.dit_block import DiTBlock, FinalLayer
from keras_dit.layers.patch_embedding import PatchEmbedding, unpatchify
from keras_dit.layers.position_embedding import SinCosPositionEmbedding
from keras_dit.layers.remat import remat_scope
from keras_dit.layers.timestep_embedding import TimestepEmbedding
from keras_dit.models.conditioned_backbone import ConditionedBackbone, image_inputs, make_conditioner
from keras_dit.validation import check_divisible, check_positive, check_sizes

# The paper's 12 configurations: (depth, hidden_size, num_heads) per size, times patch sizes 2, 4, 8. Like the
# reference, presets are ImageNet-256 latent models: 32 x 32 x 4 inputs, 1000 classes, learned sigma.
_SIZES = {"S": (12, 384, 6), "B": (12, 768, 12), "L": (24, 1024, 16), "XL": (28, 1152, 16)}
DIT_PRESETS = {
    f"DiT-{size}/{patch}": dict(
        input_size=32, patch_size=patch, in_channels=4, hidden_size=hidden, depth=depth, num_heads=heads,
        learn_sigma=True, num_classes=1000,
    )
    for size, (depth, hidden, heads) in _SIZES.items()
    for patch in (2, 4, 8)
}
# Initialisation is the reference's: Keras' Dense default (xavier-uniform kernel, zero bias) everywhere, except
# N(0, 0.02) for the timestep MLP and label table and zeros for adaLN modulations and the final projection, each
# set where that layer is defined.


@keras.saving.register_keras_serializable(package="keras_dit")
class DiT(ConditionedBackbone):
    """Diffusion Transformer backbone.

    Args:
        input_size: height and width of the (square) input, e.g. 32 for 256 px images in an f8 latent space.
        patch_size: side of the square patches; must divide ``input_size``.
        in_channels: channels of ``x``.
        hidden_size, depth, num_heads, mlp_ratio: transformer width, blocks, heads and MLP expansion.
        learn_sigma: also predict the variance interpolation (output has ``2 * in_channels`` channels:
            the prediction first, then the variance values), as DiT's hybrid loss needs.
        num_classes: shorthand for a class-label conditioner (``kd.conditioning.ClassConditioner``); ``None``
            with no ``conditioner`` builds an unconditional model.
        class_dropout_prob: label dropout for classifier-free guidance; > 0 adds the null class
            (label ``num_classes``).
        timestep_frequency_shift: 0 as the reference DiT, 1 as diffusers' ``DiTTransformer2DModel``.
        norm_eps: epsilon of the block and final LayerNorms (1e-6).
        mlp_norm_eps: epsilon of the blocks' MLP-branch LayerNorm; ``None`` means ``norm_eps``
            (diffusers uses 1e-5 there).
        seed: seed of the label dropout.
        conditioner: instead of ``num_classes``, any conditioner (kind name, dict or instance, see
            ``kd.conditioning.get_conditioner``), e.g. labels with ``label_names``, tags or parameter vectors; its
            vector joins the timestep embedding in adaLN (its tokens are unused, and the variables that only
            shape them are not trained).
        remat: gradient checkpointing per block: recompute each block's activations in the backward pass
            (much less training memory for about one more forward pass of compute). Outputs are unchanged.
        norm_type: ``"layer"`` (the paper's LayerNorm) or ``"rms"`` (RMSNorm, in the blocks and the final layer).
        mlp_type: ``"gelu"`` (the paper's MLP) or ``"swiglu"`` (gated, 2/3 the width: about the same parameters).
        qk_norm: RMS-normalise queries and keys in every attention.
        rope: 2D rotary position embedding of the patch grid on queries and keys in every attention, on top of
            the fixed sin-cos positions (as LightningDiT); needs ``hidden_size / num_heads`` divisible by 4.
            These four are the modern (LightningDiT / JiT) recipe; the defaults are the paper's model, which the
            presets and the checkpoint converters build.

    Call arguments:
        inputs: dict with ``"x"`` (B, H, W, C) noisy inputs, ``"t"`` (B,) timesteps (float, DDPM
            integer-valued or 1000 t for flows) and ``"condition"`` (B,) integer labels, or the conditioner's
            raw condition (omit when unconditional).

    Example:
    >>> model = DiT.from_preset("DiT-S/2", input_size=8, num_classes=10)
    >>> y = model({"x": np.zeros((2, 8, 8, 4)), "t": np.array([1.0, 500.0]), "condition": np.array([3, 10])})
    """

    presets = DIT_PRESETS

    def __init__(
        self,
        input_size,
        patch_size,
        in_channels,
        hidden_size,
        depth,
        num_heads,
        mlp_ratio=4.0,
        learn_sigma=False,
        num_classes=None,
        class_dropout_prob=0.1,
        timestep_frequency_shift=0,
        norm_eps=1e-6,
        mlp_norm_eps=None,
        seed=None,
        conditioner=None,
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
        check_divisible("input_size", input_size, "patch_size", patch_size,
                        hint=f"use an input size that is a multiple of {patch_size}, or another patch size")
        out_channels = 2 * in_channels if learn_sigma else in_channels
        grid = input_size // patch_size
        cond_layer = make_conditioner(conditioner, hidden_size, num_classes, class_dropout_prob, seed)
        inputs = image_inputs(input_size, in_channels, cond_layer)

        tokens = PatchEmbedding(patch_size, hidden_size, name="patch_embedding")(inputs["x"])  # (B, T, D)
        tokens = SinCosPositionEmbedding((grid, grid), name="position_embedding")(tokens)
        c = TimestepEmbedding(hidden_size, frequency_shift=timestep_frequency_shift, name="timestep_embedding")(
            inputs["t"]
        )  # (B, D)
        if cond_layer is not None:
            c = c + cond_layer(inputs["condition"])[0]
            cond_layer.freeze_token_only_variables()
        with remat_scope(remat, [f"block_{i}" for i in range(depth)]):
            blocks = [
                DiTBlock(hidden_size, num_heads, mlp_ratio, norm_eps, mlp_norm_eps, norm_type=norm_type,
                         mlp_type=mlp_type, qk_norm=qk_norm, rope_grid=(grid, grid) if rope else None,
                         name=f"block_{i}")
                for i in range(depth)
            ]
        for block in blocks:
            tokens = block(tokens, c)
        tokens = FinalLayer(hidden_size, patch_size, out_channels, norm_eps, norm_type, name="final_layer")(tokens, c)
        outputs = unpatchify(tokens, (grid, grid), patch_size, out_channels)  # (B, H, W, out_channels)

        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self._finish(cond_layer, dict(
            input_size=input_size, patch_size=patch_size, in_channels=in_channels, hidden_size=hidden_size,
            depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, learn_sigma=learn_sigma,
            num_classes=num_classes, class_dropout_prob=class_dropout_prob, conditioner=conditioner,
            timestep_frequency_shift=timestep_frequency_shift, norm_eps=norm_eps, mlp_norm_eps=mlp_norm_eps,
            seed=seed, remat=remat, norm_type=norm_type, mlp_type=mlp_type, qk_norm=qk_norm, rope=rope,
        ))
        self.out_channels = out_channels

    @classmethod
    def from_config(cls, config):
        """Also builds DiTs saved before DiT used ``make_conditioner`` (``num_classes`` and no ``conditioner`` in
        the config), with a ``ClassLabelEmbedding``: their label table is where those files keep it."""
        if config.get("num_classes") is not None and "conditioner" not in config:
            legacy = ClassLabelEmbedding(config["num_classes"], config["hidden_size"],
                                         config.get("class_dropout_prob", 0.1), seed=config.get("seed"),
                                         name="label_conditioner")
            config = {**config, "num_classes": None, "conditioner": legacy}
        return cls(**config)
