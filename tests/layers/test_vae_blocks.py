"""The KL-VAE's building blocks (ResnetBlock, Downsample, Upsample, SpatialSelfAttention): shapes and configs.

Their numerics are checked layer for layer against diffusers in tests/convert/test_kl_vae.py.
"""

import keras
import numpy as np
import pytest

from keras_dit.layers.resampling import Downsample, Upsample
from keras_dit.layers.resnet_block import ResnetBlock
from keras_dit.layers.spatial_attention import SpatialSelfAttention
from tests.helpers import assert_close, to_numpy

X = np.random.default_rng(0).standard_normal((2, 6, 4, 8)).astype("float32")


@pytest.mark.parametrize("layer,shape", [
    (ResnetBlock(8, 16, groups=4), (2, 6, 4, 16)),
    (ResnetBlock(8, 8, groups=4), (2, 6, 4, 8)),
    (Downsample(8), (2, 3, 2, 8)),
    (Upsample(8), (2, 12, 8, 8)),
    (SpatialSelfAttention(8, groups=4), (2, 6, 4, 8)),
])
def test_shapes_and_config(layer, shape):
    out = layer(X)
    assert tuple(out.shape) == shape == tuple(layer.compute_output_shape(X.shape))
    clone = type(layer).from_config(layer.get_config())
    clone.build(X.shape)
    clone.set_weights(layer.get_weights())
    assert_close(clone(X), out, atol=1e-6)


def test_resnet_block_projects_the_skip_only_when_widths_differ():
    assert ResnetBlock(8, 8, groups=4).shortcut is None and ResnetBlock(8, 16, groups=4).shortcut is not None


def test_attention_is_residual_and_mixes_positions():
    layer = SpatialSelfAttention(8, groups=4)
    layer.build(X.shape)
    layer.proj.kernel.assign(np.zeros((8, 8), "float32"))
    layer.proj.bias.assign(np.zeros(8, "float32"))
    assert_close(layer(X), X, atol=1e-6, what="zero output projection leaves the input")
    layer.proj.kernel.assign(np.eye(8, dtype="float32"))
    changed = X.copy()
    changed[:, 0, 0] += 1.0
    moved = to_numpy(layer(changed))[:, -1, -1] - to_numpy(layer(X))[:, -1, -1]
    assert np.abs(moved).max() > 1e-4, "a change at one pixel reaches the others"
