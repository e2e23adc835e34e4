"""The R package's pure-R functions driven from Python with rpy2: NumPy <-> R array interchange (numpy2ri) keeps
(batch, height, width, channels) indexing, PNGs written by R read back in Pillow as the same pixels, and R input
errors reach Python with their message."""

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def r(rpy2_kerasdit):
    from rpy2.robjects import default_converter, numpy2ri
    from rpy2.robjects.conversion import localconverter

    ro = rpy2_kerasdit

    def call(name, *args, **kwargs):
        """Call R function ``name`` (or an R function expression) with NumPy arguments; the result comes back
        converted to NumPy."""
        function = ro.r(name) if name.startswith("function") else ro.r[name]
        with localconverter(default_converter + numpy2ri.converter):
            return function(*args, **kwargs)

    return call


def test_numpy_images_cross_to_r_with_their_indexing(r):
    images = np.arange(2 * 3 * 4 * 5, dtype=np.int32).reshape(2, 3, 4, 5)
    back = np.asarray(r("as_image_array", images))  # integers 0..119 stay integer images, unchanged
    assert back.shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(back, images)
    # R's indexing agrees: element [b, h, w, c] (1-based in R) is images[b-1, h-1, w-1, c-1].
    element = r("function(x) x[2, 3, 1, 4]", images)
    assert int(element[0]) == images[1, 2, 0, 3]


def test_png_written_by_r_is_the_numpy_image(r, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 5, 7, 3)).astype(np.int32)  # non-square: a transposition would show
    r("save_images", images, str(tmp_path), prefix="x")
    for b in range(3):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f"x_{b + 1:03d}.png")), images[b])


def test_image_grid_matches_numpy(r):
    images = np.stack([np.full((2, 3, 1), v, np.int32) for v in (10, 20, 30)])
    grid = np.asarray(r("image_grid", images, ncol=2, padding=1))
    expected = np.full((5, 7, 1), 255, np.int32)  # white padding
    expected[0:2, 0:3] = 10
    expected[0:2, 4:7] = 20
    expected[3:5, 0:3] = 30
    np.testing.assert_array_equal(grid, expected)


def test_float_images_stay_float_in_minus_one_one(r):
    images = np.linspace(-1, 1, 2 * 4 * 4 * 3).reshape(2, 4, 4, 3)
    back = np.asarray(r("as_image_array", images))
    np.testing.assert_allclose(back, images)


@pytest.mark.parametrize(
    "expression, message",
    [
        ("as_image_array(data.frame(a = 1:3))", "data.frame"),
        ("as_image_array(array(1.5, c(1, 2, 2, 1)))", "[-1, 1]"),
        ("as_labels(c(0, 1.5))", "whole numbers"),
        ("as_labels(c(0, 10), num_classes = 10)", "0..9"),
        ("use_backend('pytorch')", "'backend' must be one of \"tensorflow\", \"jax\", got \"pytorch\""),
        ("script_args(list(epochs = 1), c('--epochz', '2'))", "Unknown option --epochz"),
    ],
)
def test_bad_r_inputs_raise_with_their_message(rpy2_kerasdit, expression, message):
    from rpy2.rinterface_lib.embedded import RRuntimeError

    with pytest.raises(RRuntimeError) as error:
        rpy2_kerasdit.r(expression)
    assert message in str(error.value)


def test_numpy_pin_follows_the_installed_reticulate(rpy2_kerasdit):
    version = rpy2_kerasdit.r('format(utils::packageVersion("reticulate"))')[0]
    pins = list(rpy2_kerasdit.r('kerasdit_requirements("jax", package = "src")'))
    expected = "numpy>=1.26,<2" if tuple(map(int, version.split(".")[:2])) < (1, 38) else "numpy>=1.26"
    assert pins == ["src[jax]", expected]
