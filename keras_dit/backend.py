"""The one place that knows which Keras backend runs.

Model code uses ``keras.ops`` only; the few things ``keras.ops`` cannot say (is this value known now, or is it
being traced inside a compiled function?) live here.
"""

import contextlib
import os

import keras
import numpy as np


def name():
    """The active Keras backend: ``"jax"``, ``"tensorflow"`` or ``"torch"``."""
    return keras.backend.backend()


# XLA:CPU sends each matrix multiply to YNNPACK by default; its own (Eigen) kernels run a DiT faster on CPU.
XLA_CPU_FLAGS = "--xla_cpu_experimental_ynn_fusion_type=-individual_dot"


def tune_xla_cpu():
    """Add ``XLA_CPU_FLAGS`` to ``XLA_FLAGS`` for JAX, unless the user set that flag or opted out.

    Measured with ``benchmarks/dit_speed.py`` on a 2-core AVX-512 CPU: DiT-S/2 sampling x1.24, training
    x1.09-1.25. The flag only touches XLA:CPU (GPU and TPU compile the same as before) and only takes effect if
    JAX has not created its CPU client yet, which is why ``import keras_dit`` calls this. ``KERAS_DIT_TUNE_XLA_CPU=0``
    leaves ``XLA_FLAGS`` alone. Subprocesses inherit ``XLA_FLAGS``: one running jaxlib < 0.10 (which aborts on
    this unknown flag) needs it removed from its environment.
    """
    if name() != "jax" or os.environ.get("KERAS_DIT_TUNE_XLA_CPU", "1") == "0" or not _jaxlib_knows_the_flag():
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if XLA_CPU_FLAGS.split("=")[0] not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_CPU_FLAGS}".strip()


def _jaxlib_knows_the_flag():
    """XLA aborts on an unknown flag; jaxlib 0.7 (the numpy<2 one) has no YNNPACK flag, 0.10 has (both tested)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major, minor = (int(part) for part in version("jaxlib").split(".")[:2])
    except (PackageNotFoundError, ValueError):
        return False
    return (major, minor) >= (0, 10)


HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def split_host_cpu(count):
    """JAX: the host CPU as ``count`` devices (XLA's ``--xla_force_host_platform_device_count``, unless
    ``XLA_FLAGS`` already sets it), and their Keras names; ``[]`` where that did not happen (JAX runs on an
    accelerator, or had started on one CPU device: the flag only counts before its first computation), and
    then ``XLA_FLAGS`` is as before, so subprocesses inherit nothing."""
    before = os.environ.get("XLA_FLAGS")
    if HOST_DEVICE_FLAG not in (before or ""):
        os.environ["XLA_FLAGS"] = f"{before or ''} {HOST_DEVICE_FLAG}={count}".strip()
    import jax

    devices = keras.distribution.list_devices()[:count] if jax.default_backend() == "cpu" else []
    if len(devices) > 1:
        return devices
    if before is None:
        os.environ.pop("XLA_FLAGS", None)
    else:
        os.environ["XLA_FLAGS"] = before
    return []


def concrete_value(x):
    """``x`` as a NumPy array when its value is known now, else ``None`` (symbolic or traced).

    Input checks that need values (a label out of range, say) run eagerly and are skipped inside
    ``jit``-compiled training steps, where values do not exist yet, and inside a PyTorch trace, which would keep
    a branch on a value as a constant.
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

        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return None
    return keras.ops.convert_to_numpy(x)


def compiled_inference(model, jit_compile=False):
    """``inputs -> model(inputs, training=False)``, compiled once per input shape where the backend allows
    (see ``compiled_function``).

    Unlike ``model.predict_on_batch`` it never donates the variables' buffers (Keras' JAX predict step does),
    so it is safe to call from a callback in the middle of ``fit`` (sample grids during training).
    """
    return compiled_function(lambda inputs: model(inputs, training=False), model.variables, jit_compile)


def compiled_function(fn, variables, jit_compile=False):
    """``fn(*args)`` compiled once per argument structure and shapes where the backend allows, for inference.

    ``variables`` are the Keras variables ``fn`` reads (a model's); their current values are used at every
    call, so weight updates and EMA swaps take effect without recompiling. ``fn`` may run a whole loop
    (``keras.ops.fori_loop``): on JAX it becomes one ``jax.jit`` program (the variables' values passed in
    through a ``keras.StatelessScope``, never donated); on TensorFlow one ``tf.function`` (with XLA when
    ``jit_compile``, else a graph); on PyTorch one ``torch.jit.trace`` (see ``_torch_traced``).
    """
    backend = name()
    if backend == "jax":
        import jax

        @jax.jit
        def run(values, args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        return lambda *args: run([v.value for v in variables], args)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, reduce_retracing=True, jit_compile=jit_compile)
    if backend == "torch":
        return _torch_traced(fn, variables)
    return fn


def _torch_traced(fn, variables):
    """``fn`` traced by ``torch.jit.trace`` once per argument structure, shapes, dtypes and non-tensor values.

    The trace records the torch operations ``fn`` runs, so a call skips Keras' per-op Python dispatch: a small
    DiT forward ran 2.0-2.3x faster than eagerly, ``torch.export``'s graph 1.5x, ``torch.compile`` 1.5x after a
    110 s first call (README, Sampling). The variables' values are inputs of the trace (through a
    ``keras.StatelessScope``), so weight updates and EMA swaps take effect. A trace keeps Python control flow as
    it ran the first time, so ``fn`` may branch on shapes and settings, never on tensor values (keras_dit's
    models and samplers do not), and loops are unrolled (the sampling loop traces one step). Arguments and
    results may be nested tuples, lists and dicts; their non-tensor leaves (``None``, numbers) are part of the
    key. Its graph is then streamlined (no-op casts dropped, biases and GELUs fused into the matrix multiplies,
    multiply-adds fused: see ``_streamlined``). ``torch.jit.trace`` is deprecated in favour of those two slower
    options; its deprecation and tracer warnings are silenced.
    """
    import torch
    from torch.utils import _pytree as pytree

    traces = {}

    def run(*args):
        leaves, spec = pytree.tree_flatten(args)
        leaves = [torch.as_tensor(leaf) if isinstance(leaf, np.ndarray) else leaf for leaf in leaves]
        is_tensor = [isinstance(leaf, torch.Tensor) for leaf in leaves]
        key = (str(spec), tuple((tuple(leaf.shape), leaf.dtype) if tensor else leaf
                                for leaf, tensor in zip(leaves, is_tensor)))
        values = [variable.value for variable in variables]
        tensors = [leaf for leaf, tensor in zip(leaves, is_tensor) if tensor]
        with torch.no_grad(), _legacy_torchscript_executor():
            if key not in traces:
                traces[key] = _trace_once(fn, variables, values, tensors, leaves, spec, is_tensor)
            traced, unflatten_results = traces[key]
            return unflatten_results(traced(values, *tensors))

    return run


@contextlib.contextmanager
def _legacy_torchscript_executor():
    """Run TorchScript functions called inside with its legacy executor, not the profiling one, restoring the
    setting after. The executor is chosen when a function is first called (per autocast state), so keras_dit's
    traces get the legacy one and other TorchScript code keeps its own. Measured on a 2-core CPU: sampling the
    digits demo's 500 images (a batch of 1000 with guidance) peaked at 1.5 GB of memory against 3.0 GB for the
    plain trace under the profiling executor (and 4.5 GB for a function built from the rewritten graph), at the
    same speed or faster. The setting is process-wide: a TorchScript function another thread calls for the first
    time during such a call gets the legacy executor too."""
    import torch

    was = torch._C._jit_set_profiling_executor(False)
    try:
        yield
    finally:
        torch._C._jit_set_profiling_executor(was)


def _trace_once(fn, variables, values, tensors, leaves, spec, is_tensor):
    """One ``torch.jit.trace`` of ``fn`` on these arguments (``tensors``: the tensor leaves of ``leaves``):
    ``(traced, unflatten_results)``. The trace takes the variables' values and the tensor leaves and returns the
    result's tensor leaves; ``unflatten_results`` rebuilds the result's structure around them."""
    import warnings

    import torch
    from torch.utils import _pytree as pytree

    result_structure = {}

    def flat_fn(values, *tensors):
        tensors = iter(tensors)
        filled = [next(tensors) if tensor else leaf for leaf, tensor in zip(leaves, is_tensor)]
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            result = fn(*pytree.tree_unflatten(filled, spec))
        result_leaves, result_structure["spec"] = pytree.tree_flatten(result)
        # Only the non-tensor leaves are kept: the trace-time tensors need not outlive the trace.
        result_structure["is_tensor"] = [isinstance(leaf, torch.Tensor) for leaf in result_leaves]
        result_structure["constants"] = [None if tensor else leaf
                                         for leaf, tensor in zip(result_leaves, result_structure["is_tensor"])]
        return tuple(leaf for leaf in result_leaves if isinstance(leaf, torch.Tensor))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.trace(flat_fn, (values, *tensors), check_trace=False, strict=False)
    traced = _streamlined(traced, (values, *tensors))

    def unflatten_results(results):
        results = iter((results,) if isinstance(results, torch.Tensor) else results)
        filled = [next(results) if tensor else constant
                  for constant, tensor in zip(result_structure["constants"], result_structure["is_tensor"])]
        return pytree.tree_unflatten(filled, result_structure["spec"])

    return traced, unflatten_results


def _streamlined(traced, inputs):
    """The traced function with rewrites of its graph that keep its values (up to float rounding):

    - Keras' ``convert_to_tensor`` records an ``aten::to`` on every op input even where dtype and device already
      match; those no-op casts are dropped (each still cost a dispatch per call).
    - Each ``matmul(x, kernel) + bias`` (Keras' ``Dense``: a 2-D kernel, a 1-D bias of the same dtype, the product
      used by that add only) becomes one ``linear(x, kernel.t(), bias)``, so the bias is added inside the matrix
      multiply (``addmm``), as ``torch.nn.Linear`` does, rather than in a separate pass over the output.
    - On CPU, a ``linear`` followed by a GELU (a transformer's MLP) runs as one oneDNN matrix multiply with the
      GELU applied to its output tiles; on x86 CPUs not made by Intel every linear runs on oneDNN, not MKL
      (``_linears_on_onednn``).
    - ``a * b + c`` (adaLN's modulation, a gated residual) runs as one ``addcmul``: one pass over memory, not two.

    The rewritten function is run once on ``inputs`` (the trace's example inputs) next to the plain trace; where it
    fails or their results differ by more than rounding, a warning says so and the plain trace is kept. ``traced``
    itself where nothing fits, or where ``KERAS_DIT_STREAMLINE_TORCH=0`` (the plain trace, for a comparison or
    should a PyTorch version record a graph these rewrites do not expect).
    """
    import torch

    if os.environ.get("KERAS_DIT_STREAMLINE_TORCH", "1") == "0":
        return traced
    graph = traced.graph.copy()
    rewrites = (_drop_noop_casts, _fuse_bias_adds, _linears_on_onednn, _fuse_multiply_adds)
    if not sum(rewrite(graph) for rewrite in rewrites):
        return traced
    rewritten = torch._C._create_function_from_graph(traced.name, graph)
    try:
        if _same_results(traced(*inputs), rewritten(*inputs)):
            return rewritten
    except RuntimeError:  # an op of the rewrite this PyTorch build cannot run on these inputs
        pass
    import warnings

    warnings.warn("keras_dit: the streamlined PyTorch trace failed or computed other values than the plain trace "
                  "with this PyTorch version, so the plain trace runs (slower); KERAS_DIT_STREAMLINE_TORCH=0 skips "
                  "the rewrite.")
    return traced


def _same_results(expected, actual):
    """Whether two traces' results (a tensor or a tuple of them) agree up to float rounding."""
    import torch

    expected, actual = [(r,) if isinstance(r, torch.Tensor) else tuple(r) for r in (expected, actual)]
    if len(expected) != len(actual):
        return False
    for e, a in zip(expected, actual):
        if e.shape != a.shape or e.dtype != a.dtype:
            return False
        if e.is_floating_point():
            scale = max(1.0, float(e.abs().nan_to_num(0.0, 0.0, 0.0).max())) if e.numel() else 1.0
            if not torch.allclose(e, a, rtol=0.0, atol=1e-3 * scale, equal_nan=True):
                return False
        elif not torch.equal(e, a):
            return False
    return True


def _drop_noop_casts(graph):
    """Remove each ``aten::to`` whose output has its input's dtype and device and that asks for no copy and no
    memory format."""
    import torch

    dropped = 0
    for cast in list(graph.nodes()):
        if cast.kind() != "aten::to" or "memory_format" not in cast.schema():
            continue
        if cast.namedInput("copy").toIValue() is not False or cast.namedInput("memory_format").toIValue() is not None:
            continue
        source, result = cast.inputsAt(0).type(), cast.output().type()
        if not (isinstance(source, torch._C.TensorType) and isinstance(result, torch._C.TensorType)):
            continue
        same = (source.scalarType(), source.device()) == (result.scalarType(), result.device())
        if source.scalarType() is None or not same:
            continue
        cast.output().replaceAllUsesWith(cast.inputsAt(0))
        cast.destroy()
        dropped += 1
    return dropped


def _fuse_bias_adds(graph):
    """Rewrite each ``aten::add(aten::matmul(x, kernel), bias)`` of a Dense as ``aten::linear``."""
    import torch

    fused = 0
    for add in list(graph.nodes()):
        if add.kind() != "aten::add":
            continue
        product, bias, alpha = add.inputs()
        matmul = product.node()
        if matmul.kind() != "aten::matmul" or len(product.uses()) != 1 or alpha.toIValue() != 1:
            continue
        x, kernel = matmul.inputs()
        types = [value.type() for value in (x, kernel, bias)]
        if not all(isinstance(t, torch._C.TensorType) for t in types) or (types[1].dim(), types[2].dim()) != (2, 1):
            continue
        if len({t.scalarType() for t in types}) != 1 or types[0].scalarType() is None:
            continue
        transposed = graph.create("aten::t", [kernel]).insertBefore(add)
        _replace_nodes(graph, [matmul, add], "aten::linear", [x, transposed.output(), bias])
        fused += 1
    return fused


def _linears_on_onednn(graph):
    """On CPU, run float32 / bfloat16 ``aten::linear`` ops as oneDNN's ``mkldnn::_linear_pointwise`` (an op
    PyTorch's own compiler, inductor, emits for linears on CPU):

    - a linear followed by a GELU only (a transformer's MLP) becomes one multiply with the GELU applied to its
      output tiles while they are in cache. On a 2-core AVX-512 Intel CPU, PyTorch's separate tanh GELU took half
      as long as the matrix multiply before it (a (512, 256) x (256, 1024) product: 0.9 ms, its GELU 0.47 ms,
      both fused 1.05 ms).
    - every other linear too where ``_mkl_runs_a_slow_path()``: PyTorch multiplies float32 matrices with MKL,
      which takes a generic code path on x86 CPUs that are not Intel's. On a 2-core AMD EPYC (AVX-512) oneDNN
      ran DiT-S/2's linears at 390-440 GFLOP/s against MKL's 160-190.

    Nothing changes where PyTorch was built without oneDNN."""
    import torch

    if not torch.backends.mkldnn.is_available() or not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return 0
    every_linear = _mkl_runs_a_slow_path()
    rewritten = 0
    for linear in graph.findAllNodes("aten::linear"):  # (not graph.nodes(): a fused GELU goes with its linear)
        product = linear.output()
        result = product.type()  # linear's operands share its dtype and device
        if not isinstance(result, torch._C.TensorType) or result.scalarType() not in ("Float", "BFloat16"):
            continue
        if str(result.device()) != "cpu":
            continue
        users = [use.user for use in product.uses()]
        if len(users) == 1 and users[0].kind() == "aten::gelu":
            nodes, attribute, approximate = [linear, users[0]], "gelu", users[0].inputsAt(1)
        elif every_linear:
            nodes, attribute, approximate = [linear], "none", None
        else:
            continue
        if approximate is None:
            approximate = _constant_before(graph, "", nodes[-1])
        scalars = graph.create("prim::ListConstruct").insertBefore(nodes[-1])
        scalars.output().setType(torch._C.ListType(torch._C.OptionalType(torch._C.NumberType.get())))
        _replace_nodes(graph, nodes, "mkldnn::_linear_pointwise",
                       [*linear.inputs(), _constant_before(graph, attribute, nodes[-1]), scalars.output(), approximate])
        rewritten += 1
    return rewritten


def _mkl_runs_a_slow_path():
    """Whether this is an x86 CPU of another vendor than Intel (AMD, Hygon), on which MKL, PyTorch's float32
    matrix multiply on CPU, does not run its fast kernels (``/proc/cpuinfo``'s ``vendor_id``; False where it
    cannot be read, or where PyTorch has no MKL)."""
    import platform

    import torch

    if not torch.backends.mkl.is_available() or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            vendors = {line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("vendor_id")}
    except OSError:
        return False
    return bool(vendors) and "GenuineIntel" not in vendors


def _fuse_multiply_adds(graph):
    """Rewrite each ``aten::add(aten::mul(a, b), c)`` (either operand order, alpha 1, the product used by that add
    only, every tensor of one floating dtype) as ``aten::addcmul(c, a, b)``, which broadcasts the same way."""
    import torch

    def dtype(value):
        kind = value.type()
        return kind.scalarType() if isinstance(kind, torch._C.TensorType) else None

    fused = 0
    for add in list(graph.nodes()):
        if add.kind() != "aten::add" or "Tensor other" not in add.schema() or add.inputsAt(2).toIValue() != 1:
            continue
        for product, other in (add.inputsAt(0), add.inputsAt(1)), (add.inputsAt(1), add.inputsAt(0)):
            multiply = product.node()
            if multiply.kind() != "aten::mul" or "Tensor other" not in multiply.schema() or len(product.uses()) != 1:
                continue
            dtypes = {dtype(value) for value in (*multiply.inputs(), other, add.output())}
            if len(dtypes) != 1 or dtypes & {None, "Int", "Long", "Short", "Char", "Byte", "Bool"}:
                continue
            _replace_nodes(graph, [multiply, add], "aten::addcmul",
                           [other, *multiply.inputs(), _constant_before(graph, 1, add)])
            fused += 1
            break
    return fused


def _constant_before(graph, value, node):
    """A graph constant holding ``value``, placed before ``node`` (which will use it)."""
    constant = graph.insertConstant(value)
    constant.node().moveBefore(node)
    return constant


def _replace_nodes(graph, nodes, kind, inputs):
    """Put one ``kind(*inputs)`` node where the chain ``nodes`` was (each node's output used by the next one only):
    the last one's output type and uses move to it, and the old nodes go."""
    node = graph.create(kind, inputs).insertBefore(nodes[-1])
    node.output().setType(nodes[-1].output().type())
    nodes[-1].output().replaceAllUsesWith(node.output())
    for old in reversed(nodes):
        old.destroy()


def materialized(x):
    """``x`` unchanged, but stored once by XLA rather than recomputed inside each of its consumers (JAX only).

    A transformer's residual stream is a chain of cheap adds (``x + gate * branch``). When differentiating a
    deep stack, XLA:CPU fuses that chain into every consumer of every block, forward and backward, so the work
    grows with depth squared: a 6-block DiT trained at half the speed of TensorFlow. XLA:CPU removes
    ``optimization_barrier`` before fusion, so the barrier here is a division by a value it cannot fold
    (``sign(|x_0| + 1)``, which is 1): XLA never duplicates a division into consumers. Called at each block
    input; values and gradients are exactly unchanged. Other backends return ``x``.
    """
    if name() != "jax":
        return x
    import jax
    import jax.numpy as jnp

    first = jax.lax.stop_gradient(jnp.ravel(x)[0])
    return x / jnp.sign(jnp.abs(first) + 1)


def build_optimizer_before_fit(model):
    """Create the optimizer's variables before ``fit`` traces its first step (TensorFlow only).

    Without a ``tf.distribute`` strategy, Keras 3 (checked with 3.15) defers building the optimizer to the first
    traced train step; a ``tf.function`` that creates variables is traced twice, so that step's graph is built
    twice. Building the optimizer first, as Keras itself does under a strategy and on the other backends, leaves
    one trace and the same weights (``tests/test_backend.py`` counts the traces). Skipped when a strategy is in play
    (Keras builds it in the strategy's scope) or while any sub-layer is unbuilt (its variables do not exist yet;
    keras_dit's models create theirs when constructed, and the model itself only once ``fit`` calls it).
    """
    optimizer = getattr(model, "optimizer", None)
    if name() != "tensorflow" or optimizer is None or optimizer.built:
        return
    import tensorflow as tf

    if getattr(model, "_distribute_strategy", None) is not None or tf.distribute.has_strategy():
        return
    if all(layer.built for layer in model._flatten_layers(include_self=False)):
        optimizer.build(model.trainable_variables)


def tensorflow_devices():
    """Names of TensorFlow's logical GPUs, or of its logical CPUs where there is none (several CPUs come from
    ``tf.config.set_logical_device_configuration``): the devices a ``MirroredStrategy`` can mirror over."""
    import tensorflow as tf

    return [device.name for device in tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")]


def mirrored_strategy(device_names):
    """A ``tf.distribute.MirroredStrategy`` over ``device_names`` (see ``tensorflow_devices``)."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices=list(device_names))


def replicas_in_sync():
    """How many replicas the current ``tf.distribute`` strategy runs in sync: 1 outside one, and on JAX and
    PyTorch (whose multi-device training, ``keras.distribution``, computes one global loss)."""
    if name() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync
