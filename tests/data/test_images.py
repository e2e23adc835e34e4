import numpy as np
import pytest
from PIL import Image

from keras_dit.data.images import load_image, to_float, to_uint8


def _save(tmp_path, array, name="x.png", mode=None):
    path = tmp_path / name
    Image.fromarray(array, mode).save(path)
    return path


def test_uint8_float_round_trip():
    images = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    x = to_float(images)
    assert x.dtype == np.float32 and x.min() == -1.0 and x.max() == 1.0
    np.testing.assert_array_equal(to_uint8(x), images)


def test_to_float_rejects_out_of_range_floats():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        to_float(np.full((1, 2, 2, 3), 255.0))


def test_shorter_side_resized_then_center_cropped(tmp_path):
    # A 20 x 40 image, black at the left and right edges: the center crop keeps only the white middle.
    array = np.zeros((20, 40, 3), np.uint8)
    array[:, 6:34] = 255
    x = load_image(_save(tmp_path, array), 10)
    assert x.shape == (10, 10, 3) and x.dtype == np.float32
    assert x.min() > 0.9  # all from the white middle


def test_random_crop_and_flip_follow_the_rng(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (16, 32, 3), dtype=np.uint8)
    path = _save(tmp_path, array)
    crops = [load_image(path, 16, crop="random", flip=True, rng=np.random.default_rng(s)) for s in range(6)]
    again = load_image(path, 16, crop="random", flip=True, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(crops[0], again)
    assert len({c.tobytes() for c in crops}) > 1
    # Every crop is a 16 x 16 window of the original (mirrored or not).
    original = to_float(array)
    windows = [original[:, i:i + 16] for i in range(17)]
    for crop in crops:
        assert any(np.array_equal(crop, w) or np.array_equal(crop, w[:, ::-1]) for w in windows)


def test_grayscale_and_rgba_become_rgb_or_stay_gray(tmp_path):
    gray = _save(tmp_path, np.full((8, 8), 100, np.uint8), "gray.png")
    rgb = load_image(gray, 8)
    assert rgb.shape == (8, 8, 3) and np.allclose(rgb, 100 / 127.5 - 1)
    assert load_image(gray, 8, channels=1).shape == (8, 8, 1)
    rgba = np.zeros((8, 8, 4), np.uint8)  # fully transparent black -> white background
    rgba[:4, :, :] = (255, 0, 0, 255)  # opaque red top half
    x = load_image(_save(tmp_path, rgba, "rgba.png"), 8)
    np.testing.assert_allclose(x[0, 0], [1, -1, -1])
    np.testing.assert_allclose(x[-1, -1], [1, 1, 1])


def test_16_bit_grayscale_is_rescaled_not_clipped(tmp_path):
    """Before: a 0-65535 gradient became [-1, 1, 1, 1, 1, 1] (clipped at 255)."""
    gradient = np.repeat(np.linspace(0, 65535, 6).astype(np.uint16)[None], 6, axis=0)
    path = tmp_path / "deep.png"
    Image.fromarray(gradient).save(path)
    assert Image.open(path).mode.startswith("I")
    expected = np.linspace(-1, 1, 6, dtype=np.float32)
    np.testing.assert_allclose(load_image(path, 6, channels=1)[0, :, 0], expected, atol=1e-5)
    rgb = load_image(path, 6, channels=3)
    assert rgb.shape == (6, 6, 3) and rgb.dtype == np.float32
    np.testing.assert_allclose(rgb[0, :, 2], expected, atol=1e-5)
    assert load_image(path, 3, channels=1).shape == (3, 3, 1)  # resized in float
