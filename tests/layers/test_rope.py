"""RoPE: q.k depends only on relative position; rotation preserves norms; axis ownership of channels."""

import numpy as np
import pytest

from keras_dit.layers.rope import apply_rope, grid_positions, rope_tables
from tests.helpers import assert_close, to_numpy


def rotate(x, positions, head_dim=8):
    cos, sin = rope_tables(positions, head_dim)
    return to_numpy(apply_rope(x, cos, sin))


def test_dot_product_is_invariant_to_a_common_shift():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 2, 3, 8)).astype("float32")  # (B, N, H, Dh): token 0 is q, token 1 is k
    positions = np.array([[2, 5], [7, 1]])
    shift = np.array([[3, -4]])
    a = rotate(q, positions)
    b = rotate(q, positions + shift)
    dots_a = np.einsum("hd,hd->h", a[0, 0], a[0, 1])
    dots_b = np.einsum("hd,hd->h", b[0, 0], b[0, 1])
    assert_close(dots_b, dots_a, atol=1e-4, what="q.k after shifting both positions")
    other = rotate(q, np.array([[2, 5], [7, 2]]))
    assert np.max(np.abs(np.einsum("hd,hd->h", other[0, 0], other[0, 1]) - dots_a)) > 1e-3, "position ignored"


def test_rotation_preserves_norms_and_position_zero_is_identity():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 2, 8)).astype("float32")
    rotated = rotate(x, grid_positions(2, 2))
    assert_close(np.linalg.norm(rotated, axis=-1), np.linalg.norm(x, axis=-1), atol=1e-4, what="norms")
    assert_close(rotated[:, 0], x[:, 0], atol=1e-6, what="token at (0, 0)")


def test_rows_and_columns_own_separate_halves():
    cos, _ = rope_tables(np.array([[0, 3], [5, 0]]), 8)
    assert np.allclose(cos[0, :2], 1.0) and not np.allclose(cos[0, 2:], 1.0), "column must rotate the 2nd half"
    assert np.allclose(cos[1, 2:], 1.0) and not np.allclose(cos[1, :2], 1.0), "row must rotate the 1st half"


def test_head_dim_must_fit_the_axes():
    with pytest.raises(ValueError, match="divisible by 4"):
        rope_tables(grid_positions(2, 2), 6)
