"""GradientFilterEMA: the Grokfast update inside fit against a port of the reference gradfilter_ema, lamb=0 equals
the inner optimizer, saving, bad args; AdamW's EMA warm-up."""

import keras
import numpy as np
import pytest

from keras_dit.optimizers import AdamW, GradientFilterEMA
from tests.helpers import assert_close, to_numpy


def mean_prediction(y, p):
    return keras.ops.mean(p)


def constant_gradient_model(optimizer):
    """loss = mean(x @ w) with x = 1: the gradient of every weight is 1/units at every step."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, use_bias=False, kernel_initializer="zeros")])
    if optimizer is not None:
        model.compile(optimizer=optimizer, loss=mean_prediction)
    return model


def gradfilter_ema(grads, state, alpha, lamb):
    """NumPy port of Grokfast's reference ``gradfilter_ema`` (grokfast.py): the average starts at the first
    gradient (``state`` None), then ``avg = alpha avg + (1 - alpha) g``; returns (``g + lamb avg``, avg)."""
    state = grads if state is None else state
    state = state * alpha + grads * (1 - alpha)
    return grads + state * lamb, state


def test_fit_applies_the_reference_filtered_gradient():
    """Before: the average started at 0, so the first step was g + 0.04 g instead of the reference's g + 2 g."""
    alpha, lamb, lr, steps = 0.98, 2.0, 0.1, 3
    model = constant_gradient_model(GradientFilterEMA(keras.optimizers.SGD(lr), alpha=alpha, lamb=lamb))
    x = np.ones((4, 2), "float32")
    weight, state, first = np.zeros((2, 2)), None, None
    for step in range(steps):
        grad = np.full((2, 2), 0.5)  # d mean(x @ w) / d w_ij = x_i / 2
        filtered, state = gradfilter_ema(grad, state, alpha, lamb)
        weight = weight - lr * filtered
        model.train_on_batch(x, np.zeros((4, 2), "float32"))
        assert_close(model.layers[0].kernel, weight.astype("float32"), atol=1e-6, what=f"kernel after step {step}")
        first = filtered if first is None else first
    np.testing.assert_allclose(first, 0.5 * (1 + lamb))
    assert int(to_numpy(model.optimizer.iterations)) == steps


def test_ema_warmup_follows_the_formula():
    """The average after each step: decay 0 at step 0, then min(momentum, (1 + n) / (10 + n)); Keras' AdamW
    (ema_warmup=False) keeps the fixed momentum."""
    x, y = np.ones((4, 2), "float32"), np.zeros((4, 2), "float32")
    for warmup in (True, False):
        model = constant_gradient_model(AdamW(0.1, use_ema=True, ema_momentum=0.5, ema_warmup=warmup))
        expected = None
        for n in range(4):
            model.train_on_batch(x, y)  # not fit, which ends by copying the average over the weights
            weight = to_numpy(model.layers[0].kernel)
            decay = 0.0 if n == 0 else (min(0.5, (1 + n) / (10 + n)) if warmup else 0.5)
            expected = weight if expected is None else decay * expected + (1 - decay) * weight
            optimizer = model.optimizer
            average = optimizer._model_variables_moving_average[optimizer._get_variable_index(model.layers[0].kernel)]
            assert_close(average, expected, atol=1e-6, what=f"average after step {n} (warmup={warmup})")


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
    model.compile(optimizer=AdamW(1e-3, use_ema=True, ema_warmup=False), loss="mse")
    model.fit(np.ones((2, 2), "float32"), np.zeros((2, 2), "float32"), epochs=1, verbose=0)
    model.save(path)
    optimizer = keras.saving.load_model(path).optimizer
    assert isinstance(optimizer, AdamW) and optimizer.use_ema and not optimizer.ema_warmup


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        GradientFilterEMA(keras.optimizers.SGD(), alpha=1.0)
    with pytest.raises(ValueError, match="lamb"):
        GradientFilterEMA(keras.optimizers.SGD(), lamb=-1.0)
    with pytest.raises(ValueError, match="wraps a keras.optimizers.Optimizer"):
        GradientFilterEMA("adam")
