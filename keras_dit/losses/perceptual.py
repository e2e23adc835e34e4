"""Perceptual distance between images in the feature space of a frozen VGG19 (``keras.applications``)."""

import os

import keras
from keras import ops

from keras_dit.validation import check_nonnegative

# relu1_2, relu2_2, relu3_4, relu4_4, relu5_4: the last activation of each VGG19 block (as LPIPS uses VGG16's)
DEFAULT_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv4", "block4_conv4", "block5_conv4")
# ImageNet channel means on the 0-255 scale, BGR order: keras.applications' "caffe" preprocessing
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_NOTOP_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
_NOTOP_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + _NOTOP_FILE


def vgg_preprocess(images):
    """Images in [-1, 1], RGB -> VGG19 inputs: 0-255 scale, BGR order, ImageNet means subtracted."""
    bgr = ops.flip((images + 1.0) * 127.5, axis=-1)
    return bgr - ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=bgr.dtype)


def _vgg19(weights):
    """``keras.applications.VGG19`` without its classifier; bad or unreachable weights become clear errors."""
    build = lambda w: keras.applications.VGG19(include_top=False, weights=w, input_shape=(None, None, 3))  # noqa: E731
    if weights is None:
        return build(None)
    if weights == "imagenet":
        try:
            return build("imagenet")
        except Exception as error:
            raise FileNotFoundError(
                f"Could not get the ImageNet VGG19 weights ({type(error).__name__}: {error}). They download from "
                f"{_NOTOP_URL} into ~/.keras/models/ on first use, which needs network. Without network, copy "
                f"{_NOTOP_FILE} here from a machine that has it and pass its path: "
                "VGGPerceptualLoss(weights='/path/to/" + _NOTOP_FILE + "'), or weights=None for random features."
            ) from error
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"VGG19 weights file {path!r} does not exist; pass an existing .h5 / .weights.h5 file, "
            "'imagenet' (downloads) or None (random)."
        )
    try:
        return build(path)
    except Exception as error:
        reason = (str(error).strip().splitlines() or [""])[0][:300]
        raise ValueError(
            f"{path!r} does not hold VGG19 weights without the classifier (include_top=False) in a format Keras "
            f"loads (.h5 or .weights.h5): {type(error).__name__}: {reason}"
        ) from error


@keras.saving.register_keras_serializable(package="keras_dit")
class VGGPerceptualLoss(keras.layers.Layer):
    """Per-image perceptual distance: weighted sum over VGG19 layers of LPIPS-style feature distances.

    Each layer's features are unit-normalised over channels, then the squared differences are summed over
    channels and averaged over positions (LPIPS without its learned linear heads). The VGG is frozen: it has no
    trainable weights, so training a model with this loss never changes it.

    Args:
        weights: ``"imagenet"`` (downloaded once into the Keras cache; needs network), a path to a VGG19
            no-top weights file (e.g. Keras' ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``), or
            ``None`` for random weights (tests).
        layers: names of the VGG19 layers compared (default: the last conv of each block).
        layer_weights: one weight per layer (default: all 1).

    Call arguments:
        y_true, y_pred: (B, H, W, 3) or (B, H, W, 1) images in [-1, 1]. Returns (B,) distances.
    """

    def __init__(self, weights="imagenet", layers=DEFAULT_LAYERS, layer_weights=None, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        layers = tuple(layers)
        layer_weights = tuple(check_nonnegative("VGGPerceptualLoss layer_weights entry", w)
                              for w in (layer_weights if layer_weights is not None else [1.0] * len(layers)))
        if not layers or len(layer_weights) != len(layers):
            raise ValueError(
                f"VGGPerceptualLoss needs one weight per layer: got {len(layers)} layers {layers} and "
                f"{len(layer_weights)} layer_weights {layer_weights}."
            )
        vgg = _vgg19(weights)
        names = [layer.name for layer in vgg.layers if "conv" in layer.name or "pool" in layer.name]
        unknown = [name for name in layers if name not in names]
        if unknown:
            raise ValueError(f"Unknown VGG19 layers {unknown}; valid layers: {', '.join(names)}.")
        self.weights_source = None if weights is None else os.fspath(weights)
        self.layer_names = layers
        self.layer_weights = layer_weights
        self.features = keras.Model(vgg.input, [vgg.get_layer(name).output for name in layers], name="vgg19")
        self.features.trainable = False
        # the deepest chosen layer sits after (block - 1) 2x2 poolings; smaller images pool away to nothing
        self.min_size = 2 ** (max(int(name[5]) for name in layers) - 1)

    def call(self, y_true, y_pred):
        size = tuple(y_pred.shape[1:3])
        if tuple(y_true.shape[1:]) != tuple(y_pred.shape[1:]) or y_pred.shape[-1] not in (1, 3):
            raise ValueError(
                f"VGGPerceptualLoss compares images of the same shape with 1 or 3 channels; got "
                f"{tuple(y_true.shape)} and {tuple(y_pred.shape)}."
            )
        if any(s is not None and s < self.min_size for s in size):
            raise ValueError(
                f"Images of size {size[0]}x{size[1]} are too small for VGG19 layers {self.layer_names}: they "
                f"need at least {self.min_size}x{self.min_size}; upsample them or choose shallower layers."
            )
        batch = ops.concatenate([y_true, y_pred], axis=0)
        if batch.shape[-1] == 1:
            batch = ops.repeat(batch, 3, axis=-1)
        features = self.features(vgg_preprocess(batch), training=False)
        features = features if isinstance(features, (list, tuple)) else [features]
        distance = 0.0
        for weight, f in zip(self.layer_weights, features):
            f = f * ops.rsqrt(ops.sum(ops.square(f), axis=-1, keepdims=True) + 1e-10)  # unit norm over channels
            f_true, f_pred = ops.split(f, 2, axis=0)
            distance = distance + weight * ops.mean(ops.sum(ops.square(f_true - f_pred), axis=-1), axis=(1, 2))
        return distance  # (B,)

    def compute_output_shape(self, y_true_shape, y_pred_shape=None):
        return (y_true_shape[0],)

    def get_config(self):
        return {
            **super().get_config(),
            "weights": self.weights_source,
            "layers": list(self.layer_names),
            "layer_weights": list(self.layer_weights),
        }
