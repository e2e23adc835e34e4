"""ReiMei: the backbone contract (parameter-conditioned, shared layers, MoE), MoE placement and routing, growing
MLPs, sharing, bad input.

Models are built once per module (building is the slow part on JAX's CPU backend).
"""

import keras
import numpy as np
import pytest

import keras_dit as kd
from keras_dit.layers.moe import ExpertChoiceMoE
from tests.helpers import TINY, max_abs_diff, randomise, run_backbone_test, tiny_backbone, to_numpy

PARAMS = {"kind": "parameters", "num_parameters": 27}
SHARED = {**TINY["ReiMei"], "num_classes": None, "conditioner": PARAMS, "shared_modulation": True,
          "shared_attention": True}
X = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype("float32")
T = np.array([3.0, 700.0], "float32")
P = np.random.default_rng(1).random((2, 27)).astype("float32")


@pytest.fixture(scope="module")
def params_model():
    """Parameter-conditioned, with shared modulation and attention projections."""
    keras.utils.set_random_seed(0)
    return kd.models.ReiMei(**SHARED)


@pytest.fixture(scope="module")
def labels_model():
    keras.utils.set_random_seed(0)
    return tiny_backbone("ReiMei", num_classes=3)


def blocks(model):
    trunk = model.transformer
    return trunk.mixers + trunk.double_blocks + trunk.single_blocks


def test_structure_moe_every_other_block_and_growing_mlp(labels_model):
    assert tuple(labels_model({"x": X, "t": T, "condition": np.array([0, 3])}).shape) == X.shape
    kinds = [isinstance(block.image_mlp, ExpertChoiceMoE) for block in blocks(labels_model)]
    assert kinds == [False, False, True, False, True], kinds
    widths = [block.mlp_hidden_size for block in blocks(labels_model)]
    assert widths == sorted(widths) and widths[0] == 16 and widths[-1] == 64, widths
    assert [block.double_stream for block in blocks(labels_model)] == [False, True, True, False, False]
    assert labels_model.null_condition == 3


def test_backbone_contract(tmp_path):
    loaded = run_backbone_test(kd.models.ReiMei, SHARED, {"x": X, "t": T, "condition": P}, X.shape, tmp_path)
    assert loaded.transformer.single_blocks[0].image_attn is loaded.transformer.single_blocks[1].image_attn


def test_null_condition_is_a_nan_vector(params_model):
    null = params_model.null_conditions(2)
    assert null.shape == (2, 27) and np.isnan(null).all()


def test_sharing_reuses_layers_and_saves_parameters(params_model, labels_model):
    trunk = params_model.transformer
    assert trunk.double_blocks[0].image_attn is trunk.double_blocks[1].image_attn
    assert trunk.single_blocks[0].image_attn is trunk.single_blocks[1].image_attn
    assert trunk.count_params() < labels_model.transformer.count_params()


def test_fit_updates_the_routers(labels_model):
    routers = [b.image_mlp.router.kernel for b in blocks(labels_model) if isinstance(b.image_mlp, ExpertChoiceMoE)]
    randomise(labels_model, seed=4)  # leave adaLN-Zero: with zero gates no gradient reaches the MLPs yet
    before = [to_numpy(r).copy() for r in routers]
    labels_model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    history = labels_model.fit(
        {"x": X, "t": T, "condition": np.array([0, 2], "int32")}, X, epochs=1, batch_size=2, verbose=0
    )
    assert np.all(np.isfinite(history.history["loss"]))
    assert all(max_abs_diff(r, b) > 0 for r, b in zip(routers, before)), "a router received no gradient"


def test_bad_input(params_model):
    with pytest.raises(ValueError, match="capacity_factor must be a positive number"):
        tiny_backbone("ReiMei", capacity_factor=0.0)
    with pytest.raises(ValueError, match="not divisible by num_heads=3"):
        tiny_backbone("ReiMei", num_heads=3)
    with pytest.raises(ValueError, match="divisible by 4"):
        tiny_backbone("ReiMei", hidden_size=12)
    with pytest.raises(ValueError, match=r"\(B, 27\)"):
        params_model({"x": X, "t": T, "condition": P[:, :26]})
    with pytest.raises(ValueError, match="Unknown ReiMei preset 'ReiMei-XL'"):
        kd.models.ReiMei.from_preset("ReiMei-XL")


def test_alphabet_preset_takes_27_parameters():
    preset = kd.models.ReiMei.presets["ReiMei-Alphabet"]
    assert preset["conditioner"]["num_parameters"] == 27 and preset["input_size"] == 64
