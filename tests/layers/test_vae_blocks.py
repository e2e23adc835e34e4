"""The KL-VAE's building blocks (ResnetBlock, Downsample, Upsample, SpatialSelfAttention): the layer contract.

Their numerics are checked layer for layer against diffusers in tests/convert/test_kl_vae.py.
"""

import numpy as np
import pytest

from keras_dit.layers.resampling import Downsample, Upsample
from keras_dit.layers.resnet_block import ResnetBlock
from keras_dit.layers.spatial_attention import SpatialSelfAttention
from tests.helpers import assert_close, run_layer_test, to_numpy

X = np.random.default_rng(0).standard_normal((2, 6, 4, 8)).astype("float32")


@pytest.mark.parametrize("cls, kwargs, shape", [
    (ResnetBlock, {"in_channels": 8, "out_channels": 16, "groups": 4}, (2, 6, 4, 16)),
    (ResnetBlock, {"in_channels": 8, "out_channels": 8, "groups": 4}, (2, 6, 4, 8)),
    (Downsample, {"channels": 8}, (2, 3, 2, 8)),
    (Upsample, {"channels": 8}, (2, 12, 8, 8)),
    (SpatialSelfAttention, {"channels": 8, "groups": 4}, (2, 6, 4, 8)),
])
def test_layer_contract(cls, kwargs, shape, tmp_path):
    layer = run_layer_test(cls, kwargs, X, shape, tmp_path)
    assert tuple(layer.compute_output_shape(X.shape)) == shape


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
