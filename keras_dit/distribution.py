"""Multi-device training through ``keras.distribution``: data parallel, and model parallel with a layout of
the transformer weights (Megatron-style column / row sharding), as a TPU pod or a multi-GPU host would use.

``keras.distribution`` drives the JAX backend (TensorFlow support in Keras is experimental); on TensorFlow
use ``tf.distribute.MirroredStrategy`` and build, compile and fit the model inside ``strategy.scope()``.
``distribution_scope`` picks the right one for the current backend (what ``keras-dit train`` uses).
"""

import contextlib
import os
import re

import keras

from keras_dit import backend
from keras_dit.validation import check_choice, check_int

DISTRIBUTIONS = ("data_parallel", "model_parallel")
SCOPES = ("none",) + DISTRIBUTIONS

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
    check_choice("distribution", kind, DISTRIBUTIONS)
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


def _selected(devices, count, what):
    """The first ``count`` of ``devices`` (all of them for ``None``), with an error naming what is available."""
    if count is None:
        return list(devices)
    available = f"the {len(devices)} {what} available: {', '.join(map(str, devices))}; or null for all of them"
    return list(devices)[:check_int("devices", count, maximum=len(devices), hint=available)]


def mirrored_strategy(devices=None):
    """A ``tf.distribute.MirroredStrategy`` over the first ``devices`` GPUs (all for ``None``), or over the
    logical CPU devices where there is no GPU (see ``tf.config.set_logical_device_configuration``)."""
    return backend.mirrored_strategy(_selected(backend.tensorflow_devices(), devices, "TensorFlow devices"))


def host_cpu_devices(batch_size, cores=None):
    """JAX without an accelerator: the host CPU as several JAX devices, for data-parallel training over its cores.

    XLA:CPU runs a small model's ops one after another and each keeps about one core busy, so on 2 cores half
    the machine idles; one device per core, each with its share of the batch, uses all of it
    (``benchmarks/cpu_devices.py``: the demo's DiT 1.28-1.35x faster per step on 2 cores). The count is the most
    devices, at most ``cores`` (default: the cores this process may use), that divide ``batch_size``.

    Only takes effect before JAX's first computation (``backend.split_host_cpu``). Returns the device names
    (several), or ``None`` where it does not apply: another backend, an accelerator, one core, or a JAX that
    already runs on one CPU device.
    """
    if backend.name() != "jax":
        return None
    cores = cores or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    count = max(n for n in range(1, cores + 1) if batch_size % n == 0)
    devices = backend.split_host_cpu(count) if count > 1 else []
    return devices or None


def distribution_scope(kind="none", devices=None, model_axis=2, batch_size=None):
    """A context in which to build, compile and fit a model on several devices, on the current backend.

    Args:
        kind: ``"none"`` (a null context), ``"data_parallel"`` or ``"model_parallel"``.
        devices: how many devices to use (the first ones); ``None`` for all.
        model_axis: devices along the model axis (``model_parallel`` only).
        batch_size: when given, checked to divide evenly over the data-parallel replicas.

    JAX uses ``make_distribution`` (``keras.distribution``); TensorFlow a ``MirroredStrategy`` (data parallel
    only); PyTorch has no multi-device training here and raises ``ValueError``.
    """
    check_choice("distribution type", kind, SCOPES)
    if kind == "none":
        return contextlib.nullcontext()
    current = backend.name()
    if current == "jax":
        selected = _selected(keras.distribution.list_devices(), devices, "JAX devices")
        replicas = len(selected) // (model_axis if kind == "model_parallel" else 1)
        scope = make_distribution(kind, selected, model_parallel_size=model_axis).scope()
    elif current == "tensorflow":
        if kind != "data_parallel":
            raise ValueError(
                f"distribution type {kind!r} is not supported on the TensorFlow backend, which trains on several "
                "devices through tf.distribute.MirroredStrategy (data_parallel); use KERAS_BACKEND=jax for "
                "model_parallel."
            )
        strategy = mirrored_strategy(devices)
        replicas = strategy.num_replicas_in_sync
        scope = strategy.scope()
    else:
        raise ValueError(
            f"multi-device training (distribution type {kind!r}) is not supported on the {current} backend; "
            "use KERAS_BACKEND=jax (keras.distribution) or tensorflow (MirroredStrategy), or distribution type none."
        )
    if batch_size is not None and batch_size % replicas:
        raise ValueError(
            f"batch size {batch_size} does not divide over {replicas} data-parallel replicas; choose a multiple "
            f"of {replicas}."
        )
    return scope


def scale_loss_for_replicas(loss):
    """``loss`` divided by the number of ``tf.distribute`` replicas in sync (unchanged elsewhere).

    A ``MirroredStrategy`` sums the replicas' gradients, so a model whose ``compute_loss`` averages its own
    per-example losses (rather than through a ``keras.losses.Loss``, which does this) divides by the replica
    count to train as on one device; Keras' TensorFlow trainer multiplies the logged loss back.
    """
    replicas = backend.replicas_in_sync()
    return loss / replicas if replicas > 1 else loss
