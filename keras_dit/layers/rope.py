"""Rotary position embeddings (RoPE), axial in 2D: rows rotate half the head channels, columns the other half.

The rotation makes ``q . k`` depend only on the *difference* of the two tokens' positions, which is what lets
attention generalise across the image grid without an additive position embedding.
"""

import numpy as np
from keras import ops

from keras_dit.validation import check_divisible


def grid_positions(grid_h, grid_w):
    """(grid_h * grid_w, 2) integer (row, column) positions of row-major tokens."""
    rows, cols = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")
    return np.stack([rows.reshape(-1), cols.reshape(-1)], axis=1)


def rope_tables(positions, head_dim, theta=10000.0):
    """(N, A) positions on A axes -> ``(cos, sin)``, each (N, head_dim // 2) float32.

    Axis ``a`` owns the ``head_dim // A`` channels ``[a * head_dim // A, (a + 1) * head_dim // A)``, as
    ``head_dim // (2 A)`` channel pairs rotating at frequencies ``theta ** (-2 i / (head_dim / A))``.
    """
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim == 1:
        positions = positions[:, None]
    axes = positions.shape[1]
    check_divisible(f"RoPE over {axes} axes: head_dim", head_dim, None, 2 * axes,
                    hint=f"make hidden_size / num_heads a multiple of {2 * axes}")
    per_axis = head_dim // axes
    freqs = theta ** (-np.arange(0, per_axis, 2, dtype=np.float64) / per_axis)  # (per_axis / 2,)
    angles = np.concatenate([positions[:, a : a + 1] * freqs[None] for a in range(axes)], axis=1)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rope(x, cos, sin):
    """Rotates adjacent channel pairs of (B, N, H, Dh) queries or keys by the (N, Dh / 2) angles' cos / sin."""
    _, tokens, heads, head_dim = x.shape
    pairs = ops.reshape(x, (-1, tokens, heads, head_dim // 2, 2))
    x1, x2 = pairs[..., 0], pairs[..., 1]  # (B, N, H, Dh / 2)
    cos = ops.cast(cos, x.dtype)[None, :, None, :]
    sin = ops.cast(sin, x.dtype)[None, :, None, :]
    rotated = ops.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return ops.reshape(rotated, (-1, tokens, heads, head_dim))


def apply_rope_to_tail(x, cos, sin):
    """``apply_rope`` on the last ``N = cos.shape[0]`` tokens of (B, L + N, H, Dh) ``x``; the first L tokens
    (time / condition tokens that have no grid position) pass unrotated."""
    length = x.shape[1] - cos.shape[0]
    if length == 0:
        return apply_rope(x, cos, sin)
    return ops.concatenate([x[:, :length], apply_rope(x[:, length:], cos, sin)], axis=1)
