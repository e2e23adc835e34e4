"""REPA: representation alignment (Yu et al. 2024, "Representation Alignment for Generation").

An early block's tokens, through a small trainable MLP projector, are pulled towards the patch features a frozen
pretrained encoder computes from the *clean* image: ``1 - mean_n cos(projector(h_n), y_n)`` per sample, added to
the diffusion loss with weight ~0.5. The denoiser then need not learn a representation from scratch, which is
what made REPA reach SiT-XL/2's FID in far fewer steps.

The encoder is any ``keras.Model`` mapping images (B, H, W, C) in [-1, 1] to patch features (B, N, E) on a square
grid (e.g. keras-hub's DINOv2 backbone wrapped to drop its class token and take [-1, 1] inputs). Nothing is
downloaded: the caller builds or loads it. Images are resized to the encoder's input size when it has a fixed
one, and its feature grid is resized to the backbone's token grid when they differ.
"""

import copy
import math

import keras
from keras import ops

from keras_dit.diffusion.objective import cosine_similarity
from keras_dit.validation import check_int, check_nonnegative


@keras.saving.register_keras_serializable(package="keras_dit")
class REPA(keras.layers.Layer):
    """The REPA projector and loss around a frozen encoder; give it to ``DiffusionModel(repa=...)``.

    Args:
        encoder: frozen ``keras.Model``, images (B, H, W, C) in [-1, 1] -> (B, N, E) patch features, N a square.
        block: the backbone block whose output is aligned: an index among its transformer blocks (0 = the first;
            REPA uses the 8th of 28 in SiT-XL/2) or a layer name (``"block_2"``).
        weight: weight of the alignment loss (0.5 in REPA).
        projector_hidden_size: width of the 3-layer SiLU MLP projector (REPA: 2048).

    Call arguments:
        tokens: (B, T, D) the block's output; with extra leading tokens (U-ViT's time / condition tokens) only the
            last ``grid * grid`` (the patches) are aligned. images: (B, H, W, C) clean images in [-1, 1].
        Returns (B,) ``weight * (1 - mean cosine similarity)``.
    """

    def __init__(self, encoder, block=1, weight=0.5, projector_hidden_size=2048, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(encoder, keras.Model) or len(encoder.output.shape) != 3:
            raise ValueError(
                "REPA's encoder must be a keras.Model mapping images (B, H, W, C) to patch features (B, N, E); got "
                f"{type(encoder).__name__} with output {getattr(getattr(encoder, 'output', None), 'shape', None)}."
            )
        self.encoder = encoder
        self.encoder.trainable = False
        self.block = block  # an index or a layer name, checked against the backbone in ``attach``
        self.weight = check_nonnegative("REPA weight", weight)
        self.projector_hidden_size = check_int("REPA projector_hidden_size", projector_hidden_size)
        width = int(encoder.output.shape[-1])
        self.projector = keras.Sequential([
            keras.layers.Dense(projector_hidden_size, activation="silu", name="fc1"),
            keras.layers.Dense(projector_hidden_size, activation="silu", name="fc2"),
            keras.layers.Dense(width, name="fc3"),
        ], name="projector")
        self.grid = None

    def attach(self, backbone):
        """Bind to ``backbone``: build the projector for its block's width; returns a functional model sharing the
        backbone's layers, ``inputs -> (prediction, block tokens)`` (the caller keeps it out of Keras' tracking:
        its weights are the backbone's)."""
        layer = self._block_layer(backbone)
        self.grid = backbone.input_size // backbone.patch_size
        self.projector.build((None, None, int(layer.output.shape[-1])))
        self.built = True
        return keras.Model(backbone.input, [backbone.output, layer.output], name=f"{backbone.name}_repa_features")

    def _block_layer(self, backbone):
        blocks = [layer for layer in backbone.layers if type(layer).__name__ in ("DiTBlock", "TransformerBlock")]
        if isinstance(self.block, str):
            names = [layer.name for layer in blocks]
            if self.block not in names:
                raise ValueError(f"REPA block {self.block!r} is not a block of {backbone.name}; its blocks: {names}.")
            return blocks[names.index(self.block)]
        if not 0 <= int(self.block) < len(blocks):
            raise ValueError(
                f"REPA block={self.block} is out of range: {backbone.name} has {len(blocks)} transformer blocks "
                f"(0 to {len(blocks) - 1})."
            )
        return blocks[int(self.block)]

    def target_features(self, images):
        """(B, grid * grid, E) frozen encoder features of clean ``images``, on the backbone's token grid."""
        images = ops.cast(images, "float32")
        size = self.encoder.input.shape[1:3]
        if None not in size and tuple(size) != tuple(images.shape[1:3]):
            images = ops.image.resize(images, tuple(size), interpolation="bilinear")
        features = ops.stop_gradient(ops.cast(self.encoder(images, training=False), "float32"))  # (B, N, E)
        side = math.isqrt(int(features.shape[1]))
        if side * side != features.shape[1]:
            raise ValueError(f"REPA's encoder must give a square grid of patch features, got {features.shape[1]}.")
        if side != self.grid:
            grid = ops.reshape(features, (-1, side, side, features.shape[-1]))
            grid = ops.image.resize(grid, (self.grid, self.grid), interpolation="bilinear", antialias=True)
            features = ops.reshape(grid, (-1, self.grid * self.grid, features.shape[-1]))
        return features

    def call(self, tokens, images):
        if self.grid is None:
            raise ValueError("REPA is not bound to a backbone; pass it to DiffusionModel(repa=...).")
        projected = ops.cast(self.projector(tokens[:, -self.grid * self.grid:]), "float32")  # (B, T, E)
        target = self.target_features(images)
        return self.weight * (1.0 - ops.mean(cosine_similarity(projected, target), axis=-1))

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "block": self.block,
            "weight": self.weight,
            "projector_hidden_size": self.projector_hidden_size,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)  # deserializing a functional model consumes its config: work on a copy
        config["encoder"] = keras.saving.deserialize_keras_object(copy.deepcopy(config["encoder"]))
        return cls(**config)
