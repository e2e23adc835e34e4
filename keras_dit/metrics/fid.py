"""Frechet Inception Distance with ``keras.applications.InceptionV3`` pool features.

The distance is pytorch-fid's: ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2)), with SciPy's ``sqrtm``,
an ``eps`` offset added to both covariances when the product's square root is not finite, and the imaginary
part (numerical noise) dropped when it is negligible. The features are Keras' ImageNet InceptionV3 (2048-d
average pool, images resized bilinearly to 299 x 299), not pytorch-fid's re-trained FID network, so scores
compare with each other, not with published FIDs.
"""

import os
import warnings

import keras
import numpy as np

from keras_dit.data.image_folder import ImageFolder
from keras_dit.data.images import to_float

# Keras' own ImageNet InceptionV3 weights without the classifier (what InceptionV3(weights="imagenet",
# include_top=False) downloads); cached in ~/.keras/models.
INCEPTION_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
)
INCEPTION_WEIGHTS_HASH = "bcbd6486424b2319ff4ef7d526e38f63"
INCEPTION_SIZE = 299


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """Frechet distance between Gaussians N(mu1, sigma1) and N(mu2, sigma2), as pytorch-fid computes it, clamped
    at 0 (a distance; round-off in ``sqrtm`` makes identical sets come out slightly negative)."""
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1, sigma2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(
            f"Statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs {sigma2.shape}; "
            "both sets need features of the same dimension."
        )
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.all(np.isfinite(covmean)):
        warnings.warn(f"sqrtm(sigma1 sigma2) is singular; adding {eps} to the covariances' diagonals.")
        offset = np.eye(len(mu1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"sqrtm(sigma1 sigma2) has an imaginary part of {np.max(np.abs(covmean.imag)):.3g}: the covariances "
                "are badly conditioned; use more images than feature dimensions."
            )
        covmean = covmean.real
    return max(0.0, float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)))


def feature_statistics(features):
    """Mean (D,) and covariance (D, D) of (N, D) features, in float64 (covariance normalised by N - 1)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"Features must be (N, D) with N >= 2, got shape {features.shape}.")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def save_statistics(path, mu, sigma):
    """Write ``mu`` / ``sigma`` to an ``.npz`` file that ``fid`` and ``load_statistics`` read."""
    np.savez(path, mu=np.asarray(mu), sigma=np.asarray(sigma))


def load_statistics(path):
    """``(mu, sigma)`` from an ``.npz`` file with arrays ``mu`` and ``sigma``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Statistics file {path!r} does not exist.")
    with np.load(path) as data:
        if "mu" not in data or "sigma" not in data:
            raise ValueError(f"{path!r} must hold arrays 'mu' and 'sigma'; it has {sorted(data.keys())}.")
        return data["mu"], data["sigma"]


def _weights_file(weights):
    """``weights`` ("imagenet", a local file or None) as what ``InceptionV3(weights=...)`` accepts."""
    if weights is None:
        return None
    if weights == "imagenet":
        try:
            return keras.utils.get_file(
                os.path.basename(INCEPTION_WEIGHTS_URL), INCEPTION_WEIGHTS_URL, cache_subdir="models",
                file_hash=INCEPTION_WEIGHTS_HASH,
            )
        except Exception as error:  # no network, a proxy, a bad download: all end here
            raise FileNotFoundError(
                f"Could not get the InceptionV3 ImageNet weights ({error}). Without network, download "
                f"{INCEPTION_WEIGHTS_URL} on another machine and pass weights='/path/to/"
                f"{os.path.basename(INCEPTION_WEIGHTS_URL)}' (or place it in ~/.keras/models)."
            ) from None
    if not os.path.isfile(weights):
        raise FileNotFoundError(
            f"InceptionV3 weights file {weights!r} does not exist; pass 'imagenet', a local .h5 file, or None."
        )
    return weights


class InceptionFeatures:
    """Images -> (N, 2048) InceptionV3 average-pool features (float64).

    Args:
        weights: ``"imagenet"`` (downloaded once, then cached), a local weights file (the ``_notop`` .h5),
            or ``None`` (random weights: tests only).
        batch_size: images per forward pass.

    Call arguments:
        images: uint8 (N, H, W, C) in [0, 255] or float in [-1, 1]; C is 1 or 3 (gray is repeated).
    """

    def __init__(self, weights="imagenet", batch_size=32):
        inception = keras.applications.InceptionV3(
            include_top=False, pooling="avg", weights=_weights_file(weights),
            input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3),
        )
        inputs = keras.Input((None, None, 3))
        resized = keras.layers.Resizing(INCEPTION_SIZE, INCEPTION_SIZE, interpolation="bilinear")(inputs)
        self.model = keras.Model(inputs, inception(resized))
        self.batch_size = batch_size

    def __call__(self, images):
        images = to_float(images)
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"Images must be (N, H, W, 1 or 3), got shape {images.shape}.")
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        batches = [images[i:i + self.batch_size] for i in range(0, len(images), self.batch_size)]
        return np.concatenate([self.model.predict_on_batch(b) for b in batches]).astype(np.float64)


def fid_statistics(source, weights="imagenet", batch_size=32, extractor=None):
    """``(mu, sigma)`` of a set of images, from any of:

    - an ``.npz`` file of precomputed statistics (``mu``, ``sigma``);
    - an image folder (read recursively, streamed; each image center-cropped and resized to 299 x 299);
    - an array of images, uint8 (N, H, W, C) or float in [-1, 1].

    ``extractor`` (an ``InceptionFeatures``) is reused when given; otherwise one is built from ``weights``.
    """
    if isinstance(source, (str, os.PathLike)) and str(source).endswith(".npz"):
        return load_statistics(source)
    extractor = extractor or InceptionFeatures(weights, batch_size)
    if isinstance(source, (str, os.PathLike)):
        folder = ImageFolder(source, INCEPTION_SIZE, batch_size=extractor.batch_size, shuffle=False,
                             drop_remainder=False)
        features = np.concatenate([extractor(folder[i]) for i in range(len(folder))])
    else:
        features = extractor(source)
    return feature_statistics(features)


def fid(real, generated, weights="imagenet", batch_size=32):
    """FID between two image sets, each a folder, an array or a statistics ``.npz`` (see ``fid_statistics``).

    Example:
    >>> score = fid("real_stats.npz", samples_uint8)
    """
    extractor = None
    if not all(isinstance(s, (str, os.PathLike)) and str(s).endswith(".npz") for s in (real, generated)):
        extractor = InceptionFeatures(weights, batch_size)
    return frechet_distance(*fid_statistics(real, extractor=extractor), *fid_statistics(generated, extractor=extractor))
