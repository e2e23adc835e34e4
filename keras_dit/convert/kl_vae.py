"""Converter from diffusers' ``AutoencoderKL`` (e.g. ``stabilityai/sd-vae-ft-mse``) into ``KLVAE``.

The networks are the same layer for layer; only layouts change: torch conv weights (out, in, kh, kw) become
Keras kernels (kh, kw, in, out), linear weights are transposed, and the pixel axes move to channels-last.
``scaling_factor`` / ``shift_factor`` of the diffusers config become ``scale_factor`` / ``shift_factor``.
"""

import numpy as np

from keras_dit.convert.diffusers import register
from keras_dit.convert.state_dict import StateDictLoader, dense
from keras_dit.latent.kl_vae import KLVAE


def _conv_kernel(w):
    return np.transpose(w, (2, 3, 1, 0))


def _conv(loader, layer, prefix):
    loader.assign(layer.kernel, f"{prefix}.weight", _conv_kernel)
    loader.assign(layer.bias, f"{prefix}.bias")


def _norm(loader, layer, prefix):
    loader.assign(layer.gamma, f"{prefix}.weight")
    loader.assign(layer.beta, f"{prefix}.bias")


def _resnet(loader, block, prefix):
    _norm(loader, block.norm1, f"{prefix}.norm1")
    _conv(loader, block.conv1, f"{prefix}.conv1")
    _norm(loader, block.norm2, f"{prefix}.norm2")
    _conv(loader, block.conv2, f"{prefix}.conv2")
    if block.shortcut is not None:
        _conv(loader, block.shortcut, f"{prefix}.conv_shortcut")


def _mid(loader, net, prefix, attention):
    _resnet(loader, net.get_layer("mid_res_0"), f"{prefix}.resnets.0")
    _resnet(loader, net.get_layer("mid_res_1"), f"{prefix}.resnets.1")
    if attention:
        attn = net.get_layer("mid_attention")
        _norm(loader, attn.norm, f"{prefix}.attentions.0.group_norm")
        for layer, key in ((attn.query, "to_q"), (attn.key, "to_k"), (attn.value, "to_v"), (attn.proj, "to_out.0")):
            dense(loader, layer, f"{prefix}.attentions.0.{key}")


def _check_config(cfg):
    problems = []
    if set(cfg.down_block_types) != {"DownEncoderBlock2D"} or set(cfg.up_block_types) != {"UpDecoderBlock2D"}:
        problems.append(f"block types {cfg.down_block_types} / {cfg.up_block_types} (expected DownEncoderBlock2D "
                        "/ UpDecoderBlock2D)")
    if cfg.act_fn != "silu":
        problems.append(f"act_fn={cfg.act_fn!r} (expected 'silu')")
    widths = list(cfg.block_out_channels)
    if any(w % widths[0] for w in widths):
        problems.append(f"block_out_channels={widths} are not multiples of the first width")
    if cfg.get("latents_mean") is not None or cfg.get("latents_std") is not None:
        problems.append("per-channel latents_mean / latents_std (set scale_factor / shift_factor per channel "
                        "by hand after converting)")
    if problems:
        raise ValueError("Cannot convert this AutoencoderKL to a KLVAE: " + "; ".join(problems) + ".")


@register("AutoencoderKL")
def from_diffusers_kl_vae(module):
    """A ``KLVAE`` equal to diffusers' ``AutoencoderKL`` ``module`` (random or pretrained weights)."""
    cfg = module.config
    _check_config(cfg)
    widths = list(cfg.block_out_channels)
    vae = KLVAE(
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        base_channels=widths[0],
        channel_multipliers=[w // widths[0] for w in widths],
        num_res_blocks=cfg.layers_per_block,
        latent_channels=cfg.latent_channels,
        norm_groups=cfg.norm_num_groups,
        mid_attention=cfg.get("mid_block_add_attention", True),
        use_quant_conv=cfg.get("use_quant_conv", True),
        use_post_quant_conv=cfg.get("use_post_quant_conv", True),
        scale_factor=cfg.scaling_factor,
        shift_factor=cfg.get("shift_factor"),
    )
    loader = StateDictLoader(module.state_dict(), source="diffusers AutoencoderKL")
    levels = len(widths)

    enc = vae.encoder
    _conv(loader, enc.get_layer("conv_in"), "encoder.conv_in")
    for level in range(levels):
        for i in range(vae.num_res_blocks):
            _resnet(loader, enc.get_layer(f"down_{level}_res_{i}"), f"encoder.down_blocks.{level}.resnets.{i}")
        if level < levels - 1:
            _conv(loader, enc.get_layer(f"down_{level}_downsample").conv,
                  f"encoder.down_blocks.{level}.downsamplers.0.conv")
    _mid(loader, enc, "encoder.mid_block", vae.mid_attention)
    _norm(loader, enc.get_layer("norm_out"), "encoder.conv_norm_out")
    _conv(loader, enc.get_layer("conv_out"), "encoder.conv_out")
    if vae.use_quant_conv:
        _conv(loader, enc.get_layer("quant_conv"), "quant_conv")

    dec = vae.decoder
    if vae.use_post_quant_conv:
        _conv(loader, dec.get_layer("post_quant_conv"), "post_quant_conv")
    _conv(loader, dec.get_layer("conv_in"), "decoder.conv_in")
    _mid(loader, dec, "decoder.mid_block", vae.mid_attention)
    for up, level in enumerate(reversed(range(levels))):  # diffusers numbers up blocks from the deepest level
        for i in range(vae.num_res_blocks + 1):
            _resnet(loader, dec.get_layer(f"up_{level}_res_{i}"), f"decoder.up_blocks.{up}.resnets.{i}")
        if level > 0:
            _conv(loader, dec.get_layer(f"up_{level}_upsample").conv, f"decoder.up_blocks.{up}.upsamplers.0.conv")
    _norm(loader, dec.get_layer("norm_out"), "decoder.conv_norm_out")
    _conv(loader, dec.get_layer("conv_out"), "decoder.conv_out")
    loader.apply()
    return vae
