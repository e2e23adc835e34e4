"""Expert-choice MoE: the layer contract, exact capacity per expert, the experts are used, gradients reach the
router, bad args."""

import keras
import numpy as np
import pytest

from keras_dit.layers.moe import ExpertChoiceMoE
from tests.helpers import max_abs_diff, run_layer_test, to_numpy


def make(**kwargs):
    kwargs = {"num_experts": 4, "capacity_factor": 1.0, "shared_experts": 1, **kwargs}
    return ExpertChoiceMoE(8, 16, name="moe", **kwargs)


def test_layer_contract(tmp_path):
    x = np.random.default_rng(3).standard_normal((2, 6, 8)).astype("float32")
    run_layer_test(ExpertChoiceMoE, {"hidden_size": 8, "mlp_hidden_size": 16, "num_experts": 2}, x, x.shape, tmp_path)


def test_each_expert_takes_exactly_its_capacity_of_distinct_tokens():
    layer = make(capacity_factor=2.0)
    x = np.random.default_rng(0).standard_normal((3, 10, 8)).astype("float32")
    layer.build(x.shape)
    gates, indices = (to_numpy(a) for a in layer.route(x))
    capacity = layer.capacity(10)
    assert capacity == 5  # floor(10 * 2 / 4)
    assert gates.shape == indices.shape == (3, 4, capacity)
    for sample in indices:
        for expert in sample:
            assert len(set(expert.tolist())) == capacity, "an expert picked a token twice"
    scores = to_numpy(keras.ops.softmax(layer.router(x), axis=-1))  # (B, T, E)
    for b in range(3):
        for e in range(4):
            top = np.sort(scores[b, :, e])[-capacity:]
            np.testing.assert_allclose(np.sort(gates[b, e]), top, atol=1e-6, err_msg="experts must take their top-C")


def test_capacity_is_clamped():
    assert make(capacity_factor=0.01).capacity(10) == 1
    assert make(capacity_factor=100.0).capacity(10) == 10


def test_routed_experts_are_active():
    layer = make(shared_experts=0)
    x = np.random.default_rng(1).standard_normal((2, 6, 8)).astype("float32")
    out = to_numpy(layer(x))
    assert np.abs(out).max() > 1e-4, "routed experts gave zero output"
    weights = layer.get_weights()
    layer.w2.assign(np.zeros_like(to_numpy(layer.w2)))
    layer.b2.assign(np.zeros_like(to_numpy(layer.b2)))
    assert np.abs(to_numpy(layer(x))).max() == 0.0, "output without experts should vanish (no shared experts)"
    layer.set_weights(weights)


def test_a_fit_step_updates_the_router():
    inputs = keras.Input((6, 8))
    model = keras.Model(inputs, make()(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((4, 6, 8)).astype("float32"), rng.standard_normal((4, 6, 8)).astype("float32")
    router = model.get_layer("moe").router.kernel
    before = to_numpy(router).copy()
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert max_abs_diff(router, before) > 1e-7, "the router received no gradient"


def test_bad_arguments():
    with pytest.raises(ValueError, match="capacity_factor must be a positive number"):
        make(capacity_factor=0.0)
    with pytest.raises(ValueError, match="capacity_factor must be a positive number"):
        make(capacity_factor=-1.0)
    with pytest.raises(ValueError, match="num_experts must be an integer >= 1"):
        make(num_experts=0)
    with pytest.raises(ValueError, match="shared_experts"):
        make(shared_experts=-1)
