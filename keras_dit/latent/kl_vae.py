"""KL-VAE: the autoencoder of Latent Diffusion / Stable Diffusion (Rombach et al., 2022), channels-last.

Encoder: 3x3 conv, per level ``num_res_blocks`` ResNet blocks then a stride-2 downsample (not after the last
level), a mid block (ResNet, single-head attention, ResNet), GroupNorm + SiLU + 3x3 conv to the mean and
log-variance of a diagonal Gaussian (then a 1x1 "quant" conv). The decoder mirrors it with
``num_res_blocks + 1`` blocks per level and nearest-neighbour upsampling. The layer order and every default
match diffusers' ``AutoencoderKL``, so its checkpoints convert exactly (``kd.convert.from_diffusers``).

Diffusion runs on ``(z - shift_factor) * scale_factor`` (see ``scale_latents``); both are stored in the config,
``kd.compute_scale_factor`` measures them.
"""

import keras
import numpy as np
from keras import ops

from keras_dit.layers.resampling import Downsample, Upsample
from keras_dit.layers.resnet_block import ResnetBlock, conv, group_norm
from keras_dit.layers.spatial_attention import SpatialSelfAttention
from keras_dit.losses.kl import gaussian_kl
from keras_dit.models.backbone import Backbone
from keras_dit.validation import check_int, check_sizes

_EPS = 1e-6  # GroupNorm epsilon of every norm in the SD VAE

# LDM's first-stage models (f = downsampling factor), Stable Diffusion's is kl-f8; the small ones are for tests
# (kl-f4-tiny), the digits demo (kl-f4-demo) and the alphabet demo (kl-f2-rgb).
KLVAE_PRESETS = {
    "kl-f4": dict(base_channels=128, channel_multipliers=(1, 2, 4), num_res_blocks=2, latent_channels=3),
    "kl-f8": dict(base_channels=128, channel_multipliers=(1, 2, 4, 4), num_res_blocks=2, latent_channels=4),
    "kl-f16": dict(base_channels=128, channel_multipliers=(1, 1, 2, 2, 4), num_res_blocks=2, latent_channels=16),
    "kl-f4-demo": dict(base_channels=32, channel_multipliers=(1, 2, 2), num_res_blocks=1, latent_channels=4,
                       norm_groups=8),
    "kl-f4-tiny": dict(base_channels=8, channel_multipliers=(1, 2, 2), num_res_blocks=1, latent_channels=4,
                       norm_groups=4),
    # The alphabet demo's: f2 (32 x 32 x 3 -> 16 x 16 x 4) without normalisation or attention. On its coloured
    # letters, GroupNorm and f4 each cost more than half the PSNR gained in a short run (README, "latent-alphabet").
    "kl-f2-rgb": dict(base_channels=16, channel_multipliers=(1, 2), num_res_blocks=1, latent_channels=4,
                      norm_groups=None, mid_attention=False),
}


class DiagonalGaussian:
    """The encoder's posterior q(z | x) = N(mean, exp(logvar)), elementwise over (B, h, w, latent_channels).

    ``logvar`` is clipped to [-30, 20] as in LDM. ``sample(seed)`` draws ``mean + std * eps``; ``seed`` is an
    int, a ``keras.random.SeedGenerator`` or ``None`` (the VAE's own generator, so jit-compiled training
    draws fresh noise every step).
    """

    def __init__(self, moments, seed_generator=None):
        self.mean, logvar = ops.split(moments, 2, axis=-1)
        self.logvar = ops.clip(logvar, -30.0, 20.0)
        self.seed_generator = seed_generator

    @property
    def std(self):
        return ops.exp(0.5 * self.logvar)

    @property
    def var(self):
        return ops.exp(self.logvar)

    def mode(self):
        return self.mean

    def sample(self, seed=None):
        seed = self.seed_generator if seed is None else seed
        noise = keras.random.normal(ops.shape(self.mean), dtype=self.mean.dtype, seed=seed)
        return self.mean + self.std * noise

    def kl(self):
        """KL(q || N(0, I)) summed over each image's latent: (B,)."""
        return gaussian_kl(self.mean, self.logvar)


@keras.saving.register_keras_serializable(package="keras_dit")
class KLVAE(keras.Model):
    """Stable-Diffusion-style KL-regularised autoencoder.

    Args:
        in_channels: image channels (3).
        out_channels: decoded channels; ``None`` means ``in_channels``.
        base_channels: width of the first level; level ``i`` has ``base_channels * channel_multipliers[i]``.
        channel_multipliers: one entry per level; the downsampling factor is ``2 ** (len - 1)``
            (``(1, 2, 4, 4)``: f8).
        num_res_blocks: ResNet blocks per encoder level (the decoder has one more, as in LDM).
        latent_channels: channels of the latent z.
        norm_groups: GroupNorm groups; every level width must be divisible by it. ``None``: no normalisation
            (not diffusers' layout; small VAEs trained briefly on flat colours learn much faster without it).
        mid_attention: whether the mid blocks have self-attention.
        use_quant_conv, use_post_quant_conv: the 1x1 convs after the encoder / before the decoder.
        scale_factor: multiplies latents for diffusion (a float, or one per latent channel); ``None`` until
            measured by ``kd.compute_scale_factor`` (then treated as 1).
        shift_factor: subtracted from latents before scaling (float or per channel); ``None`` means 0.
        seed: seed of the generator used by ``posterior.sample()``.

    Call arguments:
        images: (B, H, W, in_channels) in [-1, 1], H and W divisible by the downsampling factor.
        Calling the model reconstructs from the posterior mean: ``decode(encode(images).mean)``.

    Example:
    >>> vae = KLVAE.from_preset("kl-f4-tiny")
    >>> posterior = vae.encode(np.zeros((2, 16, 16, 3)))   # posterior.mean: (2, 4, 4, 4)
    >>> images = vae.decode(posterior.sample(seed=0))      # (2, 16, 16, 3)
    """

    presets = KLVAE_PRESETS
    from_preset = classmethod(Backbone.from_preset.__func__)

    def __init__(
        self,
        in_channels=3,
        out_channels=None,
        base_channels=128,
        channel_multipliers=(1, 2, 4, 4),
        num_res_blocks=2,
        latent_channels=4,
        norm_groups=32,
        mid_attention=True,
        use_quant_conv=True,
        use_post_quant_conv=True,
        scale_factor=None,
        shift_factor=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_sizes(in_channels=in_channels, base_channels=base_channels, num_res_blocks=num_res_blocks,
                    latent_channels=latent_channels)
        if norm_groups is not None:
            check_sizes(norm_groups=norm_groups)
        if out_channels is not None:
            check_int("out_channels", out_channels)
        channel_multipliers = tuple(check_int("channel_multipliers entry", m) for m in channel_multipliers)
        widths = [base_channels * m for m in channel_multipliers]
        bad = [] if norm_groups is None else [w for w in widths if w % norm_groups]
        if not channel_multipliers or bad:
            raise ValueError(
                f"Level widths {widths} (base_channels={base_channels} x channel_multipliers="
                f"{channel_multipliers}) must be non-empty and divisible by norm_groups={norm_groups}; "
                "change base_channels or norm_groups."
            )
        out_channels = out_channels or in_channels
        self._init_args = dict(
            in_channels=in_channels, out_channels=out_channels, base_channels=base_channels,
            channel_multipliers=channel_multipliers, num_res_blocks=num_res_blocks,
            latent_channels=latent_channels, norm_groups=norm_groups, mid_attention=mid_attention,
            use_quant_conv=use_quant_conv, use_post_quant_conv=use_post_quant_conv, seed=seed,
        )
        for key, value in self._init_args.items():
            setattr(self, key, value)
        self.scale_factor = scale_factor
        self.shift_factor = shift_factor
        self.downsampling_factor = 2 ** (len(widths) - 1)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.encoder = self._build_encoder(widths)
        self.decoder = self._build_decoder(widths)
        self.build()

    def _mid_block(self, width, prefix):
        layers = [ResnetBlock(width, width, self.norm_groups, _EPS, name=f"{prefix}_res_0")]
        if self.mid_attention:
            layers.append(SpatialSelfAttention(width, self.norm_groups, _EPS, name=f"{prefix}_attention"))
        layers.append(ResnetBlock(width, width, self.norm_groups, _EPS, name=f"{prefix}_res_1"))
        return layers

    def _head(self, channels):
        """GroupNorm, SiLU and a 3x3 conv to ``channels``: the end of the encoder and of the decoder.

        The conv runs in float32 under a mixed policy: it writes the posterior moments and the pixels, where
        bfloat16's 8-bit mantissa is visible, and PyTorch's CPU bfloat16 conv backward fails for one output channel
        ("slow_conv2d: grad_weight must be contiguous")."""
        return [group_norm(self.norm_groups, _EPS, "norm_out"), keras.layers.Activation("silu", name="silu"),
                conv(channels, 3, "conv_out", dtype="float32")]

    def _build_encoder(self, widths):
        layers = [conv(widths[0], 3, "conv_in")]
        previous = widths[0]
        for level, width in enumerate(widths):
            for i in range(self.num_res_blocks):
                layers.append(ResnetBlock(previous, width, self.norm_groups, _EPS, name=f"down_{level}_res_{i}"))
                previous = width
            if level < len(widths) - 1:
                layers.append(Downsample(width, name=f"down_{level}_downsample"))
        layers += self._mid_block(widths[-1], "mid") + self._head(2 * self.latent_channels)
        if self.use_quant_conv:
            layers.append(conv(2 * self.latent_channels, 1, "quant_conv"))
        encoder = keras.Sequential(layers, name="encoder")
        encoder.build((None, None, None, self.in_channels))
        return encoder

    def _build_decoder(self, widths):
        layers = [conv(self.latent_channels, 1, "post_quant_conv")] if self.use_post_quant_conv else []
        layers.append(conv(widths[-1], 3, "conv_in"))
        layers += self._mid_block(widths[-1], "mid")
        previous = widths[-1]
        for level in reversed(range(len(widths))):
            for i in range(self.num_res_blocks + 1):
                layers.append(ResnetBlock(previous, widths[level], self.norm_groups, _EPS, name=f"up_{level}_res_{i}"))
                previous = widths[level]
            if level > 0:
                layers.append(Upsample(widths[level], name=f"up_{level}_upsample"))
        layers += self._head(self.out_channels)
        decoder = keras.Sequential(layers, name="decoder")
        decoder.build((None, None, None, self.latent_channels))
        return decoder

    def build(self, input_shape=None):
        self.built = True  # the encoder and decoder are built in __init__, for any image size

    def check_shape(self, shape, what="images"):
        """Raise ``ValueError`` unless ``shape`` fits ``what`` (``"images"`` or ``"latents"``) of this VAE."""
        channels, factor = ((self.in_channels, self.downsampling_factor) if what == "images"
                            else (self.latent_channels, 1))
        shape = tuple(shape)
        if len(shape) != 4 or shape[-1] != channels:
            raise ValueError(f"KLVAE {what} must be (B, H, W, {channels}), got shape {shape}.")
        h, w = shape[1:3]
        if (h is not None and h % factor) or (w is not None and w % factor):
            raise ValueError(
                f"KLVAE {what} of size {h}x{w} is not divisible by the downsampling factor {factor} "
                f"(channel_multipliers={self.channel_multipliers}); resize or crop to a multiple of {factor}."
            )

    def latent_shape(self, image_shape):
        """The (B, H/f, W/f, latent_channels) latents of images of ``image_shape`` (checked), without encoding."""
        self.check_shape(image_shape, "images")
        batch, h, w, _ = tuple(image_shape)
        factor = self.downsampling_factor
        return (batch, None if h is None else h // factor, None if w is None else w // factor, self.latent_channels)

    def encode(self, images, training=False):
        """The posterior q(z | images) as a ``DiagonalGaussian`` with (B, H/f, W/f, latent_channels) moments."""
        images = ops.convert_to_tensor(images, dtype=self.compute_dtype)
        self.check_shape(images.shape, "images")
        return DiagonalGaussian(self.encoder(images, training=training), self.seed_generator)

    def decode(self, latents, training=False):
        """Images (B, h f, w f, out_channels) from unscaled latents (B, h, w, latent_channels)."""
        latents = ops.convert_to_tensor(latents, dtype=self.compute_dtype)
        self.check_shape(latents.shape, "latents")
        return self.decoder(latents, training=training)

    def call(self, images, training=False):
        return self.decode(self.encode(images, training).mean, training)

    def _factors(self, latents):
        """``latents`` and (scale, shift) as tensors of one dtype, float32 at least (1 and 0 where unset), so
        low-precision latents are not scaled by a rounded factor and any backend's tensors (torch's that require
        grad too) go through."""
        latents = ops.convert_to_tensor(latents)
        dtype = keras.backend.result_type(latents.dtype, "float32")
        scale = 1.0 if self.scale_factor is None else self.scale_factor
        shift = 0.0 if self.shift_factor is None else self.shift_factor
        return ops.cast(latents, dtype), ops.convert_to_tensor(scale, dtype), ops.convert_to_tensor(shift, dtype)

    def scale_latents(self, latents):
        """Encoder latents -> diffusion latents: ``(z - shift_factor) * scale_factor``."""
        latents, scale, shift = self._factors(latents)
        return (latents - shift) * scale

    def unscale_latents(self, latents):
        """Diffusion latents -> encoder latents (what ``decode`` takes): ``z / scale_factor + shift_factor``."""
        latents, scale, shift = self._factors(latents)
        return latents / scale + shift

    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable, **self._init_args,
            "scale_factor": plain_factor(self.scale_factor), "shift_factor": plain_factor(self.shift_factor),
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def plain_factor(value):
    """A scale/shift factor as JSON-friendly Python: None, a float or a list of floats."""
    if value is None:
        return None
    value = np.asarray(value, "float64")
    return float(value) if value.ndim == 0 else [float(v) for v in value.ravel()]
