"""Gradient checkpointing (rematerialisation) of transformer blocks, on every backend.

A checkpointed block keeps only its inputs for the backward pass and recomputes its activations there: peak
training memory drops from ``depth`` blocks' activations to about one block's, for about one more forward pass
of compute. Keras maps this onto ``jax.checkpoint``, ``tf.recompute_grad`` and ``torch.utils.checkpoint``.
"""

import contextlib

import keras


def remat_scope(enabled, layer_names):
    """A ``keras.RematScope`` checkpointing the layers named ``layer_names`` that are created inside it.

    Use it around the creation of a functional backbone's blocks; a null context when ``enabled`` is False.
    Only whole blocks are checkpointed (their sublayers are not checkpointed again).
    """
    if not enabled:
        return contextlib.nullcontext()
    return keras.RematScope(mode="list_of_layers", layer_names=list(layer_names))


def remat_call(layer, *args):
    """``layer(*args)`` with its activations recomputed in the backward pass.

    ``args`` may hold tensors, ``None`` and lists of tensors; only the tensors are handed to ``keras.remat``
    (``tf.recompute_grad`` takes tensors only, and differentiates only through its explicit inputs).
    """
    tensors = []
    for arg in args:
        if isinstance(arg, (list, tuple)):
            tensors.extend(arg)
        elif arg is not None:
            tensors.append(arg)

    def run(*flat):
        flat = iter(flat)
        rebuilt = [
            [next(flat) for _ in arg] if isinstance(arg, (list, tuple)) else (None if arg is None else next(flat))
            for arg in args
        ]
        return layer(*rebuilt)

    return keras.remat(run)(*tensors)
