"""The Alphabet-challenge data: 64 x 64 images of 1-3 coloured capital letters, each described by 27 numbers.

A parameter vector (27 float32 values, all in [0, 1] except the unused-slot marker) is
```
[0:3]            background R, G, B / 255
[3 + 8 j + 0]    letter of slot j (j = 0, 1, 2): index / 25 (A = 0, B = 0.04, ..., Z = 1); -1 marks an unused slot
[3 + 8 j + 1:5]  the letter's box x1, y1, x2, y2 / image side: the glyph fills columns [x1, x2) and rows [y1, y2)
[3 + 8 j + 5:8]  the letter's R, G, B / 255
```
An unused slot is ``[-1, 0, 0, 0, 0, 0, 0, 0]``; used slots come first. Boxes lie on a 64-step grid with sides
of 1/4 to 1/2 of the image and may overlap (later slots are drawn on top); a letter's colour differs from the
background by at least 96/255 in some channel, so it stays visible. The glyphs are Pillow's default font,
stretched to fill their box. The parameters do not depend on the image size: ``render_alphabet`` draws them
at any size.
"""

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from keras_dit.data.dataset import ArrayDataset

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
NUM_PARAMS = 27
_SLOTS, _GRID, _MIN_CONTRAST = 3, 64, 96
PARAM_NAMES = ["background_r", "background_g", "background_b"] + [
    f"{name}_{slot + 1}" for slot in range(_SLOTS) for name in ("letter", "x1", "y1", "x2", "y2", "r", "g", "b")
]


@functools.lru_cache(maxsize=None)
def _glyph(letter):
    """The letter's mask (uint8 "L" image) cropped to its ink, drawn large with Pillow's default font."""
    try:
        font = ImageFont.load_default(size=96)
    except (TypeError, ImportError):  # Pillow without FreeType: the built-in bitmap font
        font = ImageFont.load_default()
    canvas = Image.new("L", (160, 160), 0)
    ImageDraw.Draw(canvas).text((16, 16), letter, fill=255, font=font)
    return canvas.crop(canvas.getbbox())


def alphabet_params(num_images, max_letters=3, seed=0):
    """(num_images, 27) float32 parameter vectors, drawn deterministically from ``seed``."""
    if not 1 <= max_letters <= _SLOTS:
        raise ValueError(f"max_letters must be 1, 2 or 3, got {max_letters!r}.")
    rng = np.random.default_rng(seed)
    params = np.zeros((num_images, NUM_PARAMS), dtype=np.float32)
    for row in params:
        background = rng.integers(0, 256, 3)
        row[0:3] = background / 255.0
        count = rng.integers(1, max_letters + 1)
        for slot in range(_SLOTS):
            start = 3 + 8 * slot
            if slot >= count:
                row[start] = -1.0
                continue
            width, height = rng.integers(_GRID // 4, _GRID // 2 + 1, 2)
            x1, y1 = rng.integers(0, _GRID - width + 1), rng.integers(0, _GRID - height + 1)
            color = rng.integers(0, 256, 3)
            while np.max(np.abs(color - background)) < _MIN_CONTRAST:
                color = rng.integers(0, 256, 3)
            row[start] = rng.integers(0, len(LETTERS)) / (len(LETTERS) - 1)
            row[start + 1:start + 5] = np.array([x1, y1, x1 + width, y1 + height]) / _GRID
            row[start + 5:start + 8] = color / 255.0
    return params


def describe_alphabet(params):
    """Parameter vectors -> readable dicts: ``{"background": (r, g, b), "letters": [{"letter", "box", "color"}]}``
    with 0-255 colours and boxes as fractions of the image side."""
    params = _check(params)
    described = []
    for row in params:
        letters = []
        for slot in range(_SLOTS):
            code, *box_and_color = row[3 + 8 * slot:11 + 8 * slot]
            if code < 0:
                continue
            letters.append({
                "letter": LETTERS[int(round(code * (len(LETTERS) - 1)))],
                "box": tuple(float(v) for v in box_and_color[:4]),
                "color": tuple(int(round(v * 255)) for v in box_and_color[4:]),
            })
        described.append({"background": tuple(int(round(v * 255)) for v in row[:3]), "letters": letters})
    return described


def render_alphabet(params, image_size=64):
    """Draw parameter vectors: (N, 27) -> uint8 (N, image_size, image_size, 3)."""
    images = []
    for item in describe_alphabet(params):
        image = Image.new("RGB", (image_size, image_size), item["background"])
        for letter in item["letters"]:
            x1, y1, x2, y2 = (int(round(v * image_size)) for v in letter["box"])
            if x2 <= x1 or y2 <= y1:
                continue  # a box under a pixel wide at this size
            mask = _glyph(letter["letter"]).resize((x2 - x1, y2 - y1), Image.BILINEAR)
            image.paste(letter["color"], (x1, y1, x2, y2), mask)
        images.append(np.asarray(image))
    return np.stack(images)


def _check(params):
    params = np.asarray(params, dtype=np.float32)
    if params.ndim == 1:
        params = params[None]
    if params.ndim != 2 or params.shape[1] != NUM_PARAMS:
        raise ValueError(f"Alphabet parameter vectors have {NUM_PARAMS} values, got an array of shape {params.shape}.")
    codes = params[:, 3::8]
    if np.any((codes != -1) & ((codes < 0) | (codes > 1))):
        raise ValueError("Letter codes must be in [0, 1] (index / 25), or -1 for an unused slot.")
    return params


def alphabet(num_images=1024, image_size=64, max_letters=3, seed=0, **kwargs):
    """The Alphabet-challenge data set: images with their 27-value parameter vectors (``condition_kind="params"``).

    Args:
        num_images: how many images to generate (held in memory as uint8).
        image_size: image side in pixels (64 in the challenge).
        max_letters: 1 to 3 letters per image, the count drawn uniformly.
        seed: seed of the parameters and of the data set's order.
        **kwargs: ``ArrayDataset`` options (batch_size, shuffle, drop_remainder, workers, ...).
    """
    params = alphabet_params(num_images, max_letters, seed)
    return ArrayDataset(render_alphabet(params, image_size), params, "params", param_names=PARAM_NAMES,
                        seed=seed, **kwargs)
