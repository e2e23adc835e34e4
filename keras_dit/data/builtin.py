"""Built-in data sets, held in memory and generated or loaded without network: ``digits``, ``alphabet`` and
``synthetic`` (a tiny class-conditional set for fast tests), all behind ``load_builtin(name, **kwargs)``;
``load_dataset`` also opens image folders, for configs.
"""

import inspect

import numpy as np

from keras_dit.data.alphabet_challenge import alphabet
from keras_dit.data.dataset import ArrayDataset, BatchedDataset
from keras_dit.data.image_folder import ImageFolder
from keras_dit.data.images import to_float, to_uint8
from keras_dit.validation import check_choice, check_divisible, check_int

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SYNTHETIC_CLASSES = ["bright", "dark", "horizontal", "vertical"]


def _interpolation_matrix(size_in, size_out):
    """(size_out, size_in) linear-interpolation weights with half-pixel centres (as image resizers use)."""
    coords = np.clip((np.arange(size_out) + 0.5) * size_in / size_out - 0.5, 0, size_in - 1)
    low = np.floor(coords).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    weights = np.zeros((size_out, size_in))
    np.add.at(weights, (np.arange(size_out), low), 1 - (coords - low))
    np.add.at(weights, (np.arange(size_out), high), coords - low)
    return weights


def _digits_split(subset):
    """Indices of scikit-learn's 1797 digits in ``subset``: a fixed 80 / 20 split ("train" / "test") or "all"."""
    if subset not in ("all", "train", "test"):
        raise ValueError(f"subset must be 'all', 'train' or 'test', got {subset!r}.")
    order = np.random.default_rng(0).permutation(1797)
    return {"all": np.arange(1797), "train": np.sort(order[:1437]), "test": np.sort(order[1437:])}[subset]


def digits_arrays(image_size=32, channels=1, subset="all"):
    """scikit-learn's 8 x 8 digits upsampled (bilinear): uint8 images (N, S, S, C), ink bright on black, and
    int32 labels (N,)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("The 'digits' data set needs scikit-learn: pip install scikit-learn") from None
    check_divisible("digits image_size", check_int("digits image_size", image_size, 8), None, 8)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}.")
    data = load_digits()
    index = _digits_split(subset)
    small = data.images[index] / 16.0  # (N, 8, 8) in [0, 1]
    up = _interpolation_matrix(8, image_size)
    images = np.einsum("ij,njk,lk->nil", up, small, up)  # (N, S, S)
    images = np.round(np.clip(images, 0, 1) * 255).astype(np.uint8)
    return np.repeat(images[..., None], channels, axis=-1), data.target[index].astype(np.int32)


def digits(image_size=32, channels=1, subset="all", **kwargs):
    """scikit-learn's handwritten digits (1797 images, classes "zero".."nine") as a labelled data set.

    Args:
        image_size: side in pixels, a multiple of 8 (16 or 32 are typical).
        channels: 1 (grayscale) or 3 (the gray value repeated).
        subset: ``"all"``, or a fixed 80 / 20 split: ``"train"`` (1437 images) or ``"test"`` (360).
        **kwargs: ``ArrayDataset`` options (batch_size, shuffle, seed, flip, drop_remainder, ...).
    """
    images, labels = digits_arrays(image_size, channels, subset)
    return ArrayDataset(images, labels, "labels", class_names=DIGIT_NAMES, **kwargs)


def synthetic(num_images=64, image_size=8, num_classes=4, channels=1, seed=0, **kwargs):
    """A tiny class-conditional set that a pixel statistic tells apart (see ``synthetic_scores``).

    The classes (the first ``num_classes`` of them) are "bright" (a flat level in [0.5, 0.8]), "dark" (flat, in
    [-0.8, -0.5]), "horizontal" and "vertical" stripes (2 px bands of +-a, a in [0.6, 0.9], random phase), plus
    Gaussian noise of std 0.05; labels cycle through the classes.

    Args:
        num_images: examples (uint8, in memory).
        image_size: side in pixels, a multiple of 4 (8 or 16).
        num_classes: 2, 3 or 4.
        channels: 1 or 3 (the same values in each channel).
        seed: seed of the images and of the data set's order.
        **kwargs: ``ArrayDataset`` options.
    """
    if num_classes not in (2, 3, 4):
        raise ValueError(f"num_classes must be 2, 3 or 4, got {num_classes!r}.")
    check_divisible("synthetic image_size", check_int("synthetic image_size", image_size, 4), None, 4)
    rng = np.random.default_rng(seed)
    labels = np.arange(num_images) % num_classes
    bands = np.where((np.arange(image_size)[None] + rng.integers(0, 4, (num_images, 1))) % 4 < 2, 1.0, -1.0)
    amplitude = rng.uniform(0.6, 0.9, (num_images, 1, 1))
    level = rng.uniform(0.5, 0.8, (num_images, 1, 1))
    images = np.select(
        [(labels == c)[:, None, None] for c in range(4)],
        [np.broadcast_to(level, (num_images, image_size, image_size)),
         np.broadcast_to(-level, (num_images, image_size, image_size)),
         amplitude * bands[:, :, None], amplitude * bands[:, None, :]],
    )
    images = images + rng.normal(0, 0.05, images.shape)
    images = to_uint8(np.clip(images, -1, 1))[..., None].repeat(channels, axis=-1)
    return ArrayDataset(images, labels, "labels", class_names=SYNTHETIC_CLASSES[:num_classes], seed=seed, **kwargs)


def synthetic_scores(images, num_classes=4):
    """(N, num_classes) scores of the ``synthetic`` classes; ``argmax`` is the predicted class.

    From the mean m and the spread of the row means (r) and column means (c): bright m - max(r, c), dark
    -m - max(r, c), horizontal r - c, vertical c - r. Accepts uint8 or [-1, 1] float images (N, H, W, C).
    """
    x = to_float(images).mean(axis=-1)  # (N, H, W)
    mean = x.mean(axis=(1, 2))
    rows, cols = x.mean(axis=2).std(axis=1), x.mean(axis=1).std(axis=1)
    stripes = np.maximum(rows, cols)
    return np.stack([mean - stripes, -mean - stripes, rows - cols, cols - rows], axis=1)[:, :num_classes]


BUILTIN_DATASETS = {"digits": digits, "alphabet": alphabet, "synthetic": synthetic}
_DATASET_OPTIONS = [
    p for p in inspect.signature(BatchedDataset.__init__).parameters if p not in ("self", "num_examples")
]


def _check_options(function, options, what):
    """Raise a ValueError naming an option ``function`` (plus the data set options) does not take."""
    valid = [p for p in inspect.signature(function).parameters if p not in ("self", "kwargs")]
    valid += [p for p in _DATASET_OPTIONS + ["flip"] if p not in valid]
    for key in options:
        check_choice(f"option of {what}:", key, sorted(valid))


def load_builtin(name, **kwargs):
    """A built-in data set by name (``"digits"``, ``"alphabet"``, ``"synthetic"``) with its options, e.g.
    ``load_builtin("digits", image_size=16, batch_size=64)``; an ``ArrayDataset`` ready for ``fit``."""
    check_choice("built-in data set", name, sorted(BUILTIN_DATASETS))
    _check_options(BUILTIN_DATASETS[name], kwargs, f"built-in data set {name!r}")
    return BUILTIN_DATASETS[name](**kwargs)


def load_dataset(directory=None, builtin=None, **kwargs):
    """One entry point for configs: an ``ImageFolder(directory, **kwargs)`` or ``load_builtin(builtin, **kwargs)``.

    Example (a YAML ``data:`` section passed as keyword arguments):
    >>> load_dataset(directory="pets/", image_size=64, condition="labels", batch_size=32)
    >>> load_dataset(builtin="digits", image_size=16, batch_size=64)
    """
    if (directory is None) == (builtin is None):
        raise ValueError(
            "Give exactly one of directory (an image folder) or builtin (one of "
            f"{sorted(BUILTIN_DATASETS)}); got directory={directory!r}, builtin={builtin!r}."
        )
    if builtin is not None:
        return load_builtin(builtin, **kwargs)
    _check_options(ImageFolder.__init__, kwargs, f"image folder {directory!r}")
    return ImageFolder(directory, **kwargs)
