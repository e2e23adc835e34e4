"""The one place that knows which Keras backend runs.

Model code uses ``keras.ops`` only; the few things ``keras.ops`` cannot say (is this value known now, or is it
being traced inside a compiled function?) live here.
"""

import keras
import numpy as np


def name():
    """The active Keras backend: ``"jax"``, ``"tensorflow"`` or ``"torch"``."""
    return keras.backend.backend()


def concrete_value(x):
    """``x`` as a NumPy array when its value is known now, else ``None`` (symbolic or traced).

    Input checks that need values (a label out of range, say) run eagerly and are skipped inside
    ``jit``-compiled training steps, where values do not exist yet.
    """
    if isinstance(x, (np.ndarray, np.generic, int, float, list, tuple)):
        return np.asarray(x)
    if keras.backend.is_keras_tensor(x):
        return None
    backend = name()
    if backend == "jax":
        import jax

        if isinstance(x, jax.core.Tracer):
            return None
    elif backend == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly() or not hasattr(x, "numpy"):
            return None
    elif backend == "torch":
        import torch

        if torch.compiler.is_compiling():
            return None
    return keras.ops.convert_to_numpy(x)
