"""Decoding one image file into a training example, and the uint8 <-> [-1, 1] conversions at the edges.

Everything here is NumPy and Pillow, so the data pipeline runs the same on every backend and needs no
TensorFlow on the JAX or PyTorch paths.
"""

import warnings

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")  # grayscale beyond 8 bits
# What a damaged or unsupported file raises from Pillow: header errors (UnidentifiedImageError is an OSError),
# truncated data, bad palettes, and files whose pixel count looks like a decompression bomb.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def to_float(images):
    """uint8 images in [0, 255] -> float32 in [-1, 1]; float images are checked to be in [-1, 1] already."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    images = images.astype(np.float32)
    if images.size and (images.min() < -1.0001 or images.max() > 1.0001):
        raise ValueError(
            f"Float images must be in [-1, 1], got values in [{images.min():.3g}, {images.max():.3g}]. "
            "Pass uint8 images in [0, 255] or rescale with images / 127.5 - 1."
        )
    return images


def check_image_range(images, what="Training images"):
    """Raise if ``images`` are plainly not in [-1, 1] (beyond +-1.5, e.g. [0, 255]); warn if they all lie in
    [0, 1], the other common mistake. Models here take images in [-1, 1]."""
    images = np.asarray(images)
    if not images.size:
        return
    low, high = float(np.min(images)), float(np.max(images))
    if not (np.isfinite(low) and np.isfinite(high)):
        return  # NaN / inf: NaNLossGuard names the step
    if low < -1.5 or high > 1.5:
        raise ValueError(
            f"{what} have values in [{low:.4g}, {high:.4g}]; expected images in [-1, 1]. Rescale them: "
            "images / 127.5 - 1 for [0, 255] (kd.data.to_float converts uint8 arrays)."
        )
    if low >= 0.0 and high > 0.0 and images.dtype != np.uint8:
        warnings.warn(f"{what} have values in [{low:.4g}, {high:.4g}], none negative: if they are in [0, 1], "
                      "rescale them to [-1, 1] with images * 2 - 1.", stacklevel=3)


def to_uint8(images):
    """float images in [-1, 1] -> uint8 in [0, 255] (rounded, clipped); uint8 images pass through."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.round((images.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _flatten_alpha(image):
    """Composite a transparent image onto white, so transparent regions do not turn black."""
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image


def load_image(path, image_size, channels=3, crop="center", flip=False, rng=None):
    """Read one image file as float32 (H, W, channels) in [-1, 1].

    The image is resized so that it covers ``image_size`` (its shorter side matches, aspect kept), then
    cropped to it, centred or at a random offset, and optionally mirrored left-right.

    Args:
        path: image file (any format Pillow reads; EXIF rotation is applied).
        image_size: output side, an int, or ``(height, width)``.
        channels: 3 for RGB, 1 for grayscale. Grayscale and palette images become RGB; transparency is
            composited onto white.
        crop: ``"center"`` or ``"random"``.
        flip: mirror left-right with probability 1/2.
        rng: ``np.random.Generator`` for the random crop and flip (needed when either is random).

    16-bit grayscale images (``I;16`` PNGs) are rescaled from [0, 65535], not clipped at 255.

    Raises whatever Pillow raises for an unreadable file (see ``DECODE_ERRORS``).
    """
    height, width = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
    with Image.open(path) as image:
        image.draft("RGB", (width, height))  # JPEG: decode at a reduced scale that still covers the output
        image = ImageOps.exif_transpose(image)
        if image.mode in HIGH_DEPTH_MODES:
            image = _unit_float(image)
        else:
            image = _flatten_alpha(image).convert("RGB" if channels == 3 else "L")
    scale = max(height / image.height, width / image.width)
    resized = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    if resized != image.size:
        image = image.resize(resized, Image.BICUBIC)
    if crop == "random":
        left = int(rng.integers(0, image.width - width + 1))
        top = int(rng.integers(0, image.height - height + 1))
    else:
        left, top = (image.width - width) // 2, (image.height - height) // 2
    image = image.crop((left, top, left + width, top + height))
    if flip and rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float32)[..., None] * 2.0 - 1.0
        return np.repeat(array, channels, axis=-1)
    array = np.asarray(image, dtype=np.uint8)
    return to_float(array.reshape(height, width, channels))


def _unit_float(image):
    """A 16- or 32-bit grayscale image as a float ``"F"`` image in [0, 1]: 16-bit ranges are divided by 65535;
    float images are taken to be in [0, 1] already."""
    values = np.asarray(image).astype(np.float32)
    if image.mode != "F":
        values = values / 65535.0
    return Image.fromarray(np.clip(values, 0.0, 1.0), mode="F")
