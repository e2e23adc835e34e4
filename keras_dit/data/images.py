"""Decoding one image file into a training example, and the uint8 <-> [-1, 1] conversions at the edges.

Everything here is NumPy and Pillow, so the data pipeline runs the same on every backend and needs no
TensorFlow on the JAX or PyTorch paths.
"""

import numpy as np
from PIL import Image, ImageOps

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
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

    Raises whatever Pillow raises for an unreadable file (see ``DECODE_ERRORS``).
    """
    height, width = (image_size, image_size) if np.isscalar(image_size) else tuple(image_size)
    with Image.open(path) as image:
        image.draft("RGB", (width, height))  # JPEG: decode at a reduced scale that still covers the output
        image = ImageOps.exif_transpose(image)
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
    array = np.asarray(image, dtype=np.uint8)
    return to_float(array.reshape(height, width, channels))
