"""DiT backbone: the backbone contract, presets, initialisation, labels and input checks."""

import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import (TINY, assert_close, max_abs_diff, randomise, run_backbone_test, tiny_backbone, tiny_inputs,
                           to_numpy)

# Parameter counts of the paper (Peebles & Xie 2023, Table 1), in millions.
PAPER_PARAMS_M = {"S": 33, "B": 130, "L": 458, "XL": 675}
NULL = TINY["DiT"]["num_classes"]  # the null label


def test_backbone_contract(tmp_path):
    run_backbone_test(kd.models.DiT, TINY["DiT"], tiny_inputs(), (2, 8, 8, 3), tmp_path)


@pytest.mark.parametrize("size", ["S", "B"])
def test_preset_parameter_counts_match_paper(size):
    for patch in (2, 4, 8):
        model = kd.models.DiT.from_preset(f"DiT-{size}/{patch}")
        params_m = model.count_params() / 1e6
        assert abs(params_m - PAPER_PARAMS_M[size]) / PAPER_PARAMS_M[size] < 0.01, (size, patch, params_m)


def test_xl2_parameter_count_equals_reference():
    """675,129,632 in the reference, which counts its fixed 256 x 1152 pos_embed buffer as a parameter."""
    model = kd.models.DiT.from_preset("DiT-XL/2")
    assert model.count_params() + 256 * 1152 == 675_129_632


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ValueError, match=r"Did you mean 'DiT-XL/2'.*Valid presets: DiT-S/2"):
        kd.models.DiT.from_preset("DiT-XL2")


def test_preset_overrides():
    model = kd.models.DiT.from_preset("DiT-S/8", input_size=16, in_channels=3, num_classes=None, learn_sigma=False)
    out = model({"x": np.zeros((1, 16, 16, 3), "float32"), "t": np.array([5.0], "float32")})
    assert out.shape == (1, 16, 16, 3)


def test_learn_sigma_doubles_the_output_channels():
    assert tiny_backbone("DiT", learn_sigma=True)(tiny_inputs()).shape == (2, 8, 8, 6)


def test_adaln_zero_initialisation_makes_output_zero():
    """Zero-initialised modulation and final layer: a fresh DiT predicts exactly 0, and the blocks' gates are 0."""
    model = tiny_backbone("DiT")
    assert np.all(to_numpy(model(tiny_inputs())) == 0.0)
    block = model.get_layer("block_0")
    assert np.all(to_numpy(block.modulation.dense.kernel) == 0.0)
    qkv = to_numpy(block.attn.qkv.kernel)
    limit = np.sqrt(6.0 / (qkv.shape[0] + qkv.shape[1]))  # xavier-uniform bound
    assert np.abs(qkv).max() <= limit and np.abs(qkv).max() > 0.5 * limit


def test_label_changes_output_and_null_class_is_valid():
    model = randomise(tiny_backbone("DiT"))
    inputs = {**tiny_inputs(), "condition": np.array([3, 3], "int32")}
    a = to_numpy(model(inputs))
    b = to_numpy(model({**inputs, "condition": np.array([3, NULL], "int32")}))
    np.testing.assert_array_equal(a[0], b[0])
    assert np.abs(a[1] - b[1]).max() > 1e-3
    assert model.null_condition == NULL


def test_label_dropout_only_in_training():
    model = randomise(tiny_backbone("DiT", class_dropout_prob=0.5, seed=3))
    x = np.repeat(tiny_inputs()["x"][:1], 8, axis=0)
    inputs = {"x": x, "t": np.full(8, 10.0, "float32"), "condition": np.ones(8, "int32")}
    eval_out = to_numpy(model(inputs, training=False))
    assert np.abs(eval_out - eval_out[:1]).max() < 1e-6
    train_out = to_numpy(model(inputs, training=True))
    null = to_numpy(model({**inputs, "condition": np.full(8, NULL, "int32")}))
    dropped = [np.allclose(train_out[i], null[i], atol=1e-5) for i in range(8)]
    assert 0 < sum(dropped) < 8


def test_unconditional():
    model = tiny_backbone("DiT", num_classes=None)
    out = model({"x": np.zeros((2, 8, 8, 3), "float32"), "t": np.array([1.0, 2.0], "float32")})
    assert out.shape == (2, 8, 8, 3) and model.null_condition is None and model.null_conditions(2) is None
    with pytest.raises(ValueError, match="unconditional"):
        model(tiny_inputs())


def test_scalar_timestep_broadcasts():
    model = randomise(tiny_backbone("DiT"))
    inputs = {**tiny_inputs(), "t": np.array([7.0, 7.0], "float32")}
    expected = to_numpy(model(inputs))
    np.testing.assert_allclose(to_numpy(model({**inputs, "t": 7.0})), expected, atol=1e-6)


def test_bad_inputs():
    model = tiny_backbone("DiT")
    good = tiny_inputs()
    with pytest.raises(ValueError, match="rank 4"):
        model({**good, "x": np.zeros((2, 8, 8), "float32")})
    with pytest.raises(ValueError, match="not divisible by patch_size=2"):
        model({**good, "x": np.zeros((2, 7, 7, 3), "float32")})
    with pytest.raises(ValueError, match=r"built for \(B, \*\(8, 8, 3\)\)"):
        model({**good, "x": np.zeros((2, 8, 8, 4), "float32")})
    with pytest.raises(ValueError, match=r"integers in \[0, 4\].*got values in \[3, 5\]"):
        model({**good, "condition": np.array([3, 5], "int32")})
    with pytest.raises(ValueError, match="integers"):
        model({**good, "condition": np.array([-1, 2], "int32")})
    with pytest.raises(ValueError, match="class-conditional"):
        model({"x": good["x"], "t": good["t"]})
    with pytest.raises(ValueError, match="takes a dict"):
        model(good["x"])
    with pytest.raises(ValueError, match=r"'t' must have shape"):
        model({**good, "t": np.zeros((3,), "float32")})


def test_bad_construction():
    with pytest.raises(ValueError, match="input_size=10 is not divisible by patch_size=4"):
        tiny_backbone("DiT", input_size=10, patch_size=4)
    with pytest.raises(ValueError, match="not divisible by num_heads=5"):
        tiny_backbone("DiT", num_heads=5)


@pytest.mark.parametrize("conditioner", [{"kind": "parameters", "num_parameters": 3},
                                         {"kind": "tags", "vocabulary": ["a", "b", "c"], "max_tags": 3}])
def test_a_dit_trains_what_it_reads_and_freezes_the_token_only_variables(conditioner, tmp_path):
    """DiT reads the conditioner's vector alone: the variables that only shape its tokens are not trained (so fit
    warns of no variable without a gradient), every trained variable moves, and a ``.keras`` file keeps that."""
    import warnings

    import keras

    backbone = kd.models.DiT(input_size=8, patch_size=4, in_channels=1, hidden_size=16, depth=1, num_heads=2,
                             conditioner=conditioner, learn_sigma=False, seed=0)
    randomise(backbone)  # past adaLN-Zero's zero gates, so that gradients reach the conditioner at once
    frozen = {id(v) for v in backbone.conditioner.token_only_variables()}
    assert frozen and all(not v.trainable for v in backbone.conditioner.token_only_variables())
    model = kd.tasks.DiffusionModel(backbone, kd.diffusion.RectifiedFlow(), seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.5))
    rng = np.random.default_rng(0)
    condition = (rng.random((8, 3)).astype("float32") if conditioner["kind"] == "parameters"
                 else (rng.random((8, 3)) < 0.5).astype("float32"))
    before = {v.path: to_numpy(v).copy() for v in backbone.variables}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit({"images": rng.uniform(-1, 1, (8, 8, 8, 1)).astype("float32"), "condition": condition},
                  epochs=1, batch_size=4, verbose=0)
    assert not [w for w in caught if "Gradients do not exist" in str(w.message)]
    for variable in backbone.conditioner.trainable_variables + backbone.conditioner.token_only_variables():
        moved = max_abs_diff(variable, before[variable.path]) > 0
        assert moved == (id(variable) not in frozen), f"{variable.path} moved: {moved}"
    path = tmp_path / "dit.keras"
    backbone.save(path)
    loaded = keras.saving.load_model(path)
    assert [v.trainable for v in loaded.variables] == [v.trainable for v in backbone.variables]
    for a, b in zip(loaded.variables, backbone.variables):
        if "seed_generator" not in a.path:  # the dropout's random state is not a weight
            assert_close(a, b, atol=0, what=a.path)
