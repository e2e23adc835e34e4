"""Gradient checkpointing (``remat=True``) changes neither outputs nor gradients of the backbones."""

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import assert_close

TINY = {
    "DiT": lambda **kw: kd.models.DiT(input_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=2,
                                      num_heads=2, num_classes=4, class_dropout_prob=0.0, **kw),
    "UViT": lambda **kw: kd.models.UViT(input_size=8, patch_size=2, in_channels=3, hidden_size=32, depth=3,
                                        num_heads=2, num_classes=4, class_dropout_prob=0.0, **kw),
    "ReiMei": lambda **kw: kd.models.ReiMei(input_size=8, patch_size=2, in_channels=3, hidden_size=32, num_heads=2,
                                            num_mixer_layers=1, num_double_layers=1, num_single_layers=1,
                                            num_classes=4, class_dropout_prob=0.0, **kw),
}


def one_sgd_step(backbone, weights):
    """Loss and weights after one SGD step of learning rate 1: the weights move by exactly minus the gradient."""
    backbone.set_weights(weights)
    model = kd.tasks.DiffusionModel(backbone, kd.diffusion.RectifiedFlow(), seed=3)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (4, 8, 8, 3)).astype("float32")
    labels = np.array([0, 1, 2, 3], "int32")
    loss = model.fit(images, labels, batch_size=4, epochs=1, shuffle=False, verbose=0).history["loss"][0]
    return loss, backbone.get_weights()


def checkpointed_blocks(backbone):
    if isinstance(backbone, kd.models.ReiMei):
        return backbone.transformer.remat
    blocks = [layer for layer in backbone.layers if "block" in layer.name]
    return all(getattr(layer, "_remat_mode", None) is not None for layer in blocks)


@pytest.mark.parametrize("name", list(TINY))
def test_remat_keeps_outputs_and_gradients(name):
    keras.utils.set_random_seed(0)
    plain = TINY[name]()
    keras.utils.set_random_seed(1)
    remat = TINY[name](remat=True)
    assert checkpointed_blocks(remat) and not checkpointed_blocks(plain)
    assert remat.get_config()["remat"] is True
    assert kd.models.__dict__[name].from_config(remat.get_config()).get_config()["remat"] is True
    # Random weights everywhere (adaLN-Zero starts at zero, which would hide the blocks' gradients).
    rng = np.random.default_rng(2)
    weights = [rng.normal(0, 0.1, w.shape).astype("float32") for w in plain.get_weights()]
    inputs = {"x": rng.normal(size=(4, 8, 8, 3)).astype("float32"),
              "t": np.array([1.0, 250.0, 500.0, 999.0], "float32"), "condition": np.array([0, 1, 2, 3], "int32")}
    plain.set_weights(weights)
    remat.set_weights(weights)
    assert_close(remat(inputs), plain(inputs), atol=1e-5, what=f"{name} outputs with remat")
    loss_plain, after_plain = one_sgd_step(plain, weights)
    loss_remat, after_remat = one_sgd_step(remat, weights)
    assert abs(loss_plain - loss_remat) < 1e-5
    moved = max(float(np.max(np.abs(a - w))) for a, w in zip(after_plain, weights))
    assert moved > 1e-3, "the SGD step did not move the weights; the gradient comparison would be vacuous"
    for a, b, w in zip(after_remat, after_plain, weights):
        assert_close(a - w, b - w, atol=1e-5, what=f"{name} gradients with remat")
