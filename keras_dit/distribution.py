"""Multi-device training through ``keras.distribution``: data parallel, and model parallel with a layout of
the transformer weights (Megatron-style column / row sharding), as a TPU pod or a multi-GPU host would use.

``keras.distribution`` drives the JAX backend (TensorFlow support in Keras is experimental); on TensorFlow
use ``tf.distribute.MirroredStrategy`` and build, compile and fit the model inside ``strategy.scope()``.
"""

import re

import keras

DISTRIBUTIONS = ("data_parallel", "model_parallel")

# Column-parallel projections (output features sharded) and row-parallel ones (input features sharded): the
# attention's fused qkv / output projection, the MLP's two layers and the adaLN modulation of every block.
_COLUMN_PARALLEL = r".*(qkv|fc1|modulation/dense)"
_ROW_PARALLEL = r".*(attn/proj|fc2)"


def transformer_layout_map(device_mesh, model_axis="model"):
    """A ``keras.distribution.LayoutMap`` sharding the transformer blocks' weights over ``model_axis``."""
    layout_map = keras.distribution.LayoutMap(device_mesh)
    layout_map[_COLUMN_PARALLEL + "/kernel"] = (None, model_axis)
    layout_map[_COLUMN_PARALLEL + "/bias"] = (model_axis,)
    layout_map[_ROW_PARALLEL + "/kernel"] = (model_axis, None)
    return layout_map


def make_distribution(kind="data_parallel", devices=None, model_parallel_size=2):
    """A ``keras.distribution`` for ``kind`` over ``devices`` (default: every device Keras sees).

    Args:
        kind: ``"data_parallel"`` (weights replicated, batch sharded) or ``"model_parallel"`` (a 2D mesh
            ``(batch, model)``: the batch sharded over the first axis, transformer weights over the second).
        devices: device names such as ``"cpu:0"``; ``None`` lists them.
        model_parallel_size: devices along the model axis (model parallel only); must divide the count.

    Use it around model creation and training: ``keras.distribution.set_distribution(make_distribution())``.
    """
    if kind not in DISTRIBUTIONS:
        raise ValueError(f"Unknown distribution {kind!r}; choose one of {', '.join(DISTRIBUTIONS)}.")
    devices = list(devices) if devices is not None else keras.distribution.list_devices()
    if kind == "data_parallel":
        return keras.distribution.DataParallel(devices=devices)
    if model_parallel_size < 1 or len(devices) % model_parallel_size:
        raise ValueError(
            f"model_parallel_size={model_parallel_size} must divide the number of devices ({len(devices)})."
        )
    mesh = keras.distribution.DeviceMesh(
        (len(devices) // model_parallel_size, model_parallel_size), ["batch", "model"], devices
    )
    return keras.distribution.ModelParallel(layout_map=transformer_layout_map(mesh), batch_dim_name="batch")


def sharded_weight_paths(model):
    """The paths of ``model``'s weights that the model-parallel layout shards (for checks and logs)."""
    pattern = re.compile(f"({_COLUMN_PARALLEL}|{_ROW_PARALLEL})/(kernel|bias)")
    return [w.path for w in model.weights if pattern.fullmatch(w.path)]
