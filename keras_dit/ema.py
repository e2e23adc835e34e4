"""The EMA of the training weights (``AdamW(use_ema=True)``), kept beside the raw weights, never over them.

Keras keeps the moving averages as optimizer variables, so they are saved in ``.keras`` files with the
optimizer. Its ``fit`` ends by copying them over the raw weights (``optimizer.finalize_variable_values``), which
makes a later ``fit`` (or a resumed run) continue from the averages instead of the weights it trained, and on
JAX leaves a weight and its average sharing one buffer ("donate the same buffer twice" in the next step).
``training_weights_kept`` turns that copy off for the training models of this package; ``ema_weights`` swaps the
averages in where they belong: sampling, evaluation and an explicit export.
"""

import contextlib

from keras import ops


def ema_optimizer(model):
    """The optimizer of ``model`` that holds EMA averages (through wrappers such as ``LossScaleOptimizer`` and
    ``GradientFilterEMA``), or ``None`` without EMA or before its first step."""
    optimizer = getattr(model, "optimizer", None)
    while getattr(optimizer, "inner_optimizer", None) is not None:
        optimizer = optimizer.inner_optimizer
    if optimizer is None or not getattr(optimizer, "use_ema", False) or not optimizer.built:
        return None
    return optimizer


@contextlib.contextmanager
def ema_weights(model):
    """Temporarily swap the EMA averages into ``model``'s trainable weights (a no-op without EMA); the raw
    weights are restored exactly on exit, also after an error."""
    optimizer = ema_optimizer(model)
    if optimizer is None:
        yield
        return
    variables = model.trainable_variables
    saved = [ops.copy(v.value) for v in variables]
    # The class's method: ``training_weights_kept`` shadows the instance's during ``fit``, whose validation runs here.
    type(optimizer).finalize_variable_values(optimizer, variables)  # assigns each weight its average
    for variable in variables:  # a copy of it: on JAX the weight and the average would share one buffer
        variable.assign(ops.copy(variable.value))
    try:
        yield
    finally:
        for variable, value in zip(variables, saved):
            variable.assign(value)


def _keep_raw_weights(var_list):
    """Stands in for ``finalize_variable_values`` during ``fit``: the raw weights stay what training made."""


@contextlib.contextmanager
def training_weights_kept(model):
    """Within this context, ``fit`` leaves the raw weights as trained: it does not copy the EMA over them.

    Keras 3.x (checked with 3.15) calls ``model.optimizer.finalize_variable_values`` at the end of every ``fit``
    (``keras/src/backend/*/trainer.py``); there is no public switch, so the optimizer's method is shadowed by a
    no-op instance attribute for the duration. ``tests/test_ema.py`` fails if Keras changes this.
    """
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None or "finalize_variable_values" in vars(optimizer):
        yield
        return
    optimizer.finalize_variable_values = _keep_raw_weights
    try:
        yield
    finally:
        del optimizer.finalize_variable_values
