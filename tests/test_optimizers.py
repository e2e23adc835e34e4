"""GradientFilterEMA: the Grokfast update inside fit, lamb=0 equals the inner optimizer, saving, bad args."""

import keras
import numpy as np
import pytest

from keras_dit.optimizers import GradientFilterEMA
from tests.helpers import assert_close, to_numpy


def mean_prediction(y, p):
    return keras.ops.mean(p)


def constant_gradient_model(optimizer):
    """loss = mean(x @ w) with x = 1: the gradient of every weight is 1/units at every step."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, use_bias=False, kernel_initializer="zeros")])
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss=mean_prediction)
    return model


def test_fit_applies_the_filtered_gradient():
    alpha, lamb, lr, steps = 0.5, 2.0, 0.1, 3
    model = constant_gradient_model(GradientFilterEMA(keras.optimizers.SGD(lr), alpha=alpha, lamb=lamb))
    model.fit(np.ones((4, 2), "float32"), np.zeros((4, 2), "float32"), epochs=steps, batch_size=4, verbose=0)
    grad, ema, weight = 0.5, 0.0, 0.0  # d mean(p) / d w_ij = x_i / 2
    for _ in range(steps):
        ema = alpha * ema + (1 - alpha) * grad
        weight -= lr * (grad + lamb * ema)
    assert_close(model.layers[0].kernel, np.full((2, 2), weight, "float32"), atol=1e-6, what="kernel after fit")
    assert int(to_numpy(model.optimizer.iterations)) == steps


def test_lamb_zero_is_the_inner_optimizer():
    x, y = np.random.default_rng(0).random((8, 2)).astype("float32"), np.zeros((8, 2), "float32")
    kernels = []
    for optimizer in (keras.optimizers.Adam(0.01), GradientFilterEMA(keras.optimizers.Adam(0.01), lamb=0.0)):
        model = constant_gradient_model(optimizer)
        model.compile(optimizer=optimizer, loss="mse")
        model.layers[0].kernel.assign(np.eye(2, dtype="float32"))
        model.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
        kernels.append(to_numpy(model.layers[0].kernel))
    assert_close(kernels[1], kernels[0], atol=1e-6, what="lamb=0 vs plain Adam")


def test_saving_keeps_the_wrapper(tmp_path):
    model = constant_gradient_model(None)
    model.compile(optimizer=GradientFilterEMA(keras.optimizers.AdamW(1e-3), alpha=0.9, lamb=1.5), loss="mse")
    model.fit(np.ones((2, 2), "float32"), np.zeros((2, 2), "float32"), epochs=1, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.optimizer, GradientFilterEMA)
    assert (loaded.optimizer.alpha, loaded.optimizer.lamb) == (0.9, 1.5)
    assert isinstance(loaded.optimizer.inner_optimizer, keras.optimizers.AdamW)


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        GradientFilterEMA(keras.optimizers.SGD(), alpha=1.0)
    with pytest.raises(ValueError, match="lamb"):
        GradientFilterEMA(keras.optimizers.SGD(), lamb=-1.0)
    with pytest.raises(ValueError, match="wraps a keras.optimizers.Optimizer"):
        GradientFilterEMA("adam")
