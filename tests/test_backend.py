"""The backend module: value inspection, compiled inference, the residual barrier and the optimizer built before
``fit`` traces its step."""

import numpy as np
import pytest

import keras
import keras_dit as kd
from tests.helpers import BACKEND, assert_close, to_numpy


def test_concrete_value_is_numpy_when_eager():
    value = kd.backend.concrete_value(keras.ops.convert_to_tensor([1.0, 2.0]))
    assert isinstance(value, np.ndarray) and value.tolist() == [1.0, 2.0]
    assert kd.backend.concrete_value(keras.KerasTensor((2,))) is None


def test_materialized_is_an_exact_identity():
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype("float32")
    x[0, 0, 0] = 0.0  # the barrier's divisor is built from this element; it must still be exactly 1
    np.testing.assert_array_equal(to_numpy(kd.backend.materialized(keras.ops.convert_to_tensor(x))), x)


@pytest.mark.skipif(BACKEND != "jax", reason="the barrier only changes the program on JAX")
def test_materialized_keeps_gradients_and_the_division_under_jit():
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(np.random.default_rng(1).standard_normal((4, 6)).astype("float32"))
    loss = lambda fn: lambda v: jnp.sum(jnp.sin(fn(v)) ** 2)  # noqa: E731
    grad = jax.jit(jax.grad(loss(kd.backend.materialized)))
    assert_close(grad(x), jax.grad(loss(lambda v: v))(x), atol=0.0, what="gradient through the barrier")
    # The division is what stops XLA fusing (and recomputing) the input into every consumer: it must survive.
    assert "divide" in grad.lower(x).compile().as_text()


def test_every_transformer_block_calls_the_barrier(monkeypatch):
    from keras_dit.layers import dit_block, mmdit_block, transformer_block

    calls = []
    for module in (dit_block, transformer_block, mmdit_block):
        monkeypatch.setattr(module, "materialized", lambda x, m=module: calls.append(m.__name__) or x)
    tokens, c = np.zeros((1, 4, 8), "float32"), np.zeros((1, 8), "float32")
    dit_block.DiTBlock(8, 2)(tokens, c)
    transformer_block.TransformerBlock(8, 2)(tokens)
    mmdit_block.MMDiTBlock(8, 2, mlp_hidden_size=16)(tokens, tokens, c)
    blocks = [name.rsplit(".", 1)[-1] for name in dict.fromkeys(calls)]
    assert blocks == ["dit_block", "transformer_block", "mmdit_block"]


@pytest.mark.parametrize(
    "before, opt_out, after",
    [
        ("", None, kd.backend.XLA_CPU_FLAGS),
        ("--xla_dump_to=/tmp/x", None, "--xla_dump_to=/tmp/x " + kd.backend.XLA_CPU_FLAGS),
        ("--xla_cpu_experimental_ynn_fusion_type=dot", None, "--xla_cpu_experimental_ynn_fusion_type=dot"),
        ("", "0", ""),
    ],
    ids=["added", "appended", "user-choice-kept", "opted-out"],
)
def test_tune_xla_cpu_adds_the_flag_only_where_asked(monkeypatch, before, opt_out, after):
    monkeypatch.setattr(kd.backend, "name", lambda: "jax")
    monkeypatch.setattr(kd.backend, "_jaxlib_knows_the_flag", lambda: True)
    monkeypatch.setenv("XLA_FLAGS", before)
    if opt_out is None:
        monkeypatch.delenv("KERAS_DIT_TUNE_XLA_CPU", raising=False)
    else:
        monkeypatch.setenv("KERAS_DIT_TUNE_XLA_CPU", opt_out)
    kd.backend.tune_xla_cpu()
    assert __import__("os").environ["XLA_FLAGS"] == after


@pytest.mark.parametrize("backend, jaxlib_knows", [("tensorflow", True), ("jax", False)], ids=["tf", "old-jaxlib"])
def test_tune_xla_cpu_leaves_other_backends_and_old_jaxlib_alone(monkeypatch, backend, jaxlib_knows):
    monkeypatch.setattr(kd.backend, "name", lambda: backend)
    monkeypatch.setattr(kd.backend, "_jaxlib_knows_the_flag", lambda: jaxlib_knows)
    monkeypatch.setenv("XLA_FLAGS", "")
    kd.backend.tune_xla_cpu()
    assert __import__("os").environ["XLA_FLAGS"] == ""


@pytest.mark.skipif(BACKEND != "jax", reason="an XLA:CPU flag of JAX")
def test_import_keras_dit_takes_effect_on_jax_matrix_multiplies():
    import jax
    import jax.numpy as jnp

    a = jnp.ones((64, 64))
    compiled = jax.jit(lambda x, y: x @ y).lower(a, a).compile().as_text()
    assert "ynn" not in compiled.lower(), "import keras_dit came after JAX created its CPU client"


@pytest.mark.skipif(BACKEND == "torch", reason="PyTorch traces whatever jit_compile says")
def test_sampling_follows_the_models_jit_compile_and_agrees_without_it():
    backbone = kd.models.DiT(input_size=4, patch_size=2, in_channels=2, hidden_size=16, depth=2, num_heads=2,
                             num_classes=3, seed=0)
    latents = {}
    for jit_compile in (True, False):
        model = kd.tasks.DiffusionModel(backbone, kd.diffusion.GaussianDiffusion())
        model.compile(optimizer="adam", jit_compile=jit_compile)
        assert model.jit_compile is jit_compile
        latents[jit_compile] = model.generate([0, 2], num_steps=3, guidance_scale=2.0, seed=0, return_latents=True)
    assert_close(latents[True], latents[False], atol=1e-5, what="XLA-compiled vs plain sampling")


def test_compiled_function_equals_the_function_and_reads_the_current_weights():
    """Nested arguments and results with non-tensor leaves (None, numbers, a NumPy array) on every backend: the
    compiled function gives what the function gives, follows weight updates, and a changed number (part of the
    compiled program's key on PyTorch, a constant of the trace) is not baked in."""
    layer = keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(seed=0), bias_initializer="ones")
    layer.build((None, 2))

    def fn(inputs, scale, extra):
        out = layer(inputs["x"]) * scale
        return {"out": out, "nothing": None, "sum": out + inputs["y"]} if extra is None else (out, extra + 1.0)

    compiled = kd.backend.compiled_function(fn, layer.variables)
    x = np.random.default_rng(0).standard_normal((4, 2)).astype("float32")
    inputs = {"x": keras.ops.convert_to_tensor(x), "y": np.ones((4, 3), "float32")}
    dense = lambda: x @ to_numpy(layer.kernel) + 1.0  # noqa: E731 (the bias is ones)
    for scale in (2.0, 3.0):
        result = compiled(inputs, scale, None)
        assert result["nothing"] is None
        assert_close(result["out"], dense() * scale, atol=1e-5, what=f"scale {scale}")
        assert_close(result["sum"], dense() * scale + 1.0, atol=1e-5, what="the second result")
    out, extra = compiled(inputs, 1.0, keras.ops.ones((2,)))
    assert_close(out, dense(), atol=1e-5, what="another structure")
    assert_close(extra, np.full(2, 2.0), atol=0, what="a tensor beside the result")
    layer.kernel.assign(np.full((2, 3), 0.5, "float32"))
    assert_close(compiled(inputs, 1.0, None)["out"], dense(), atol=1e-5, what="after a weight update")


@pytest.mark.skipif(BACKEND != "torch", reason="a rewrite of PyTorch's traced graphs")
@pytest.mark.parametrize("slow_mkl", [False, True], ids=["intel", "other-x86"])
def test_torch_traces_drop_noop_casts_and_add_dense_biases_inside_the_matrix_multiply(monkeypatch, slow_mkl):
    """A traced Keras MLP runs as linear ops (the GELU inside the first one's oneDNN multiply; the second one on
    oneDNN too where MKL runs a slow path) without Keras' no-op ``aten::to`` casts, with the values of the model;
    a matmul + add that is no Dense (batched, a bias of another shape) and a real cast stay as they are."""
    import torch

    monkeypatch.setattr(kd.backend, "_mkl_runs_a_slow_path", lambda: slow_mkl)
    inputs = keras.Input((5, 4))
    hidden = keras.layers.Dense(8, activation="gelu", bias_initializer="ones")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(3, bias_initializer="ones")(hidden))
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype("float32")
    traced = kd.backend.compiled_inference(model)
    assert_close(traced(x), model(x), atol=1e-6, what="streamlined trace vs the model")
    x = keras.ops.convert_to_tensor(x)  # so the profile holds the trace's ops only
    with torch.profiler.profile() as profile:
        traced(x)
    ops = [event.name for event in profile.events()]
    assert "aten::to" not in ops and "aten::add" not in ops, ops
    if torch.backends.mkldnn.is_available():
        onednn = 2 if slow_mkl else 1
        assert ops.count("mkldnn::_linear_pointwise") == onednn and ops.count("aten::linear") == 2 - onednn, ops
        assert "aten::gelu" not in ops, ops
    else:
        assert ops.count("aten::linear") == 2, ops

    def attention_like(q, k, mask, half):
        return torch.add(torch.matmul(q, k), mask), half.to(torch.float32)

    args = (torch.randn(2, 3, 4, 5), torch.randn(2, 3, 5, 4), torch.randn(4), torch.ones(2, dtype=torch.float16))
    untouched = torch.jit.trace(attention_like, args)
    assert kd.backend._streamlined(untouched, args) is untouched


@pytest.mark.skipif(BACKEND != "torch", reason="a rewrite of PyTorch's traced graphs")
@pytest.mark.parametrize("slow_mkl", [False, True], ids=["intel", "other-x86"])
def test_a_streamlined_dit_forward_equals_the_eager_model(monkeypatch, slow_mkl):
    """Every rewrite at once on a real DiT (adaLN modulation, attention, GELU MLPs, gated residuals): the traced
    forward gives the eager model's values, with the fused ops in its profile."""
    import torch

    monkeypatch.setattr(kd.backend, "_mkl_runs_a_slow_path", lambda: slow_mkl)
    backbone = kd.models.DiT(input_size=8, patch_size=2, in_channels=4, hidden_size=32, depth=2, num_heads=2,
                             num_classes=3, seed=0)
    rng = np.random.default_rng(0)
    for variable in backbone.trainable_variables:  # adaLN-Zero starts at 0: random weights make every block count
        variable.assign(0.1 * rng.standard_normal(variable.shape))
    inputs = {"x": keras.ops.convert_to_tensor(rng.standard_normal((2, 8, 8, 4)).astype("float32")),
              "t": keras.ops.convert_to_tensor(np.array([3.0, 700.0], "float32")),
              "condition": keras.ops.convert_to_tensor(np.array([0, 2]))}
    traced = kd.backend.compiled_inference(backbone)
    assert_close(traced(inputs), backbone(inputs, training=False), atol=1e-5, what="streamlined DiT forward")
    with torch.profiler.profile() as profile:
        traced(inputs)
    ops = [event.name for event in profile.events()]
    assert ops.count("aten::addcmul") >= 4 * 2, ops  # modulations and gated residuals: 4 per block at least
    if torch.backends.mkldnn.is_available():
        assert "aten::gelu" not in ops, ops
        if slow_mkl:  # every Dense: patches in, timestep MLP (2), per block qkv, attention out, MLP (2), adaLN,
            # and the final layer's adaLN and projection
            assert ops.count("mkldnn::_linear_pointwise") == 1 + 2 + 5 * 2 + 2 and "aten::linear" not in ops, ops
        else:
            assert ops.count("mkldnn::_linear_pointwise") == 2, ops


@pytest.mark.skipif(BACKEND != "torch", reason="which matrix multiply PyTorch traces use")
@pytest.mark.parametrize("cpuinfo, slow", [("vendor_id\t: GenuineIntel\n", False),
                                           ("vendor_id\t: AuthenticAMD\nvendor_id\t: AuthenticAMD\n", True),
                                           ("", False), (None, False)])
def test_mkl_counts_as_slow_on_x86_cpus_not_made_by_intel(monkeypatch, cpuinfo, slow):
    """MKL is kept on Intel CPUs and where the vendor cannot be read (no /proc/cpuinfo: None)."""
    import io
    import platform

    import torch

    def fake_open(path, *args, **kwargs):
        assert path == "/proc/cpuinfo"
        if cpuinfo is None:
            raise FileNotFoundError(path)
        return io.StringIO(cpuinfo)

    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: True)
    monkeypatch.setattr(kd.backend, "open", fake_open, raising=False)
    assert kd.backend._mkl_runs_a_slow_path() is slow
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert kd.backend._mkl_runs_a_slow_path() is False


@pytest.mark.skipif(BACKEND != "torch", reason="a setting of PyTorch's TorchScript")
def test_torch_traces_run_on_the_legacy_executor_and_leave_the_setting_as_it_was():
    """The profiling executor doubled the peak memory of sampling (README, Sampling); other TorchScript code
    keeps whatever executor it had."""
    import torch

    seen, dense = [], keras.layers.Dense(2)
    dense.build((None, 3))

    def layer(x):
        seen.append(torch._C._jit_set_profiling_executor(False))  # the setting while traced: returned, kept
        return dense(x)

    x = np.ones((4, 3), "float32")
    compiled = kd.backend.compiled_function(layer, dense.variables)
    assert_close(compiled(x), dense(x), atol=1e-6, what="traced function")
    assert seen == [False]
    assert torch._C._jit_set_profiling_executor(True) is True  # restored: it was on before the call


@pytest.mark.skipif(BACKEND != "torch", reason="a rewrite of PyTorch's traced graphs")
def test_torch_traces_fuse_multiply_adds():
    """adaLN's ``x * (1 + scale) + shift`` and a gated residual become one ``addcmul`` each, with the same values;
    an integer multiply-add is left alone."""
    import torch

    def block(x, scale, shift, gate, counts):
        modulated = x * (1 + scale) + shift
        q, k, v = (part.reshape(2, 6, 2, 4).transpose(1, 2).contiguous() for part in modulated.split(8, dim=-1))
        attended = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(2, 6, 8)
        return x[..., :8] + gate * attended, counts * counts + counts

    rng = np.random.default_rng(0)
    floats = [torch.as_tensor(rng.standard_normal(shape).astype("float32")) for shape in
              ((2, 6, 24), (2, 1, 24), (2, 1, 24), (2, 1, 8))]
    args = (*floats, torch.arange(6))
    plain = torch.jit.trace(block, args)
    streamlined = kd.backend._streamlined(plain, args)
    kinds = [node.kind() for node in streamlined.graph.nodes()]
    assert kinds.count("aten::addcmul") == 2, kinds
    assert kinds.count("aten::mul") == 1 and kinds.count("aten::add") == 2, kinds  # 1 + scale; the integers
    for expected, actual in zip(block(*args), streamlined(*args)):
        assert_close(actual, expected, atol=1e-6, what="streamlined block")


@pytest.mark.skipif(BACKEND != "torch", reason="a rewrite of PyTorch's traced graphs")
@pytest.mark.parametrize("failure", ["other values", "an error"])
def test_a_rewrite_that_changes_values_or_fails_is_refused_with_a_warning(monkeypatch, failure):
    """Should a PyTorch version make a rewrite compute something else, or fail to run it, the plain trace runs
    (and says so)."""
    import torch

    def drop_gelus(graph):  # a wrong rewrite: the GELU's input passed on as its output
        for gelu in graph.findAllNodes("aten::gelu"):
            gelu.output().replaceAllUsesWith(gelu.inputsAt(0))
            gelu.destroy()
        return 1

    def failing(*args):
        raise RuntimeError("no kernel for these inputs")

    monkeypatch.setattr(kd.backend, "_linears_on_onednn", drop_gelus)
    if failure == "an error":
        monkeypatch.setattr(torch._C, "_create_function_from_graph", lambda name, graph: failing)
    args = (torch.linspace(-3, 3, 12).reshape(3, 4),)
    plain = torch.jit.trace(lambda x: torch.nn.functional.gelu(x) * 2, args)
    with pytest.warns(UserWarning, match="plain trace"):
        assert kd.backend._streamlined(plain, args) is plain


def tiny_trainer(kind):
    """A compiled DiffusionModel (``"diffusion"``) or VAETrainer (``"vae"``) for 8 x 8 images: the two models
    with their own ``fit``."""
    if kind == "diffusion":
        backbone = kd.models.DiT(input_size=8, patch_size=4, in_channels=1, hidden_size=16, depth=1, num_heads=2,
                                 num_classes=2, learn_sigma=False, seed=0)
        model = kd.tasks.DiffusionModel(backbone, kd.diffusion.RectifiedFlow(), seed=0)
    else:
        vae = kd.models.KLVAE(in_channels=1, latent_channels=2, base_channels=8, channel_multipliers=(1,),
                              num_res_blocks=1, norm_groups=4, mid_attention=False, seed=0)
        model = kd.tasks.VAETrainer(vae, perceptual_weight=0.0)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3, use_ema=True))
    return model


@pytest.mark.parametrize("kind", ["diffusion", "vae"])
def test_fit_traces_its_train_step_once(kind):
    """On TensorFlow Keras would build the optimizer inside the first traced step, so the step was traced twice
    (``build_optimizer_before_fit``); on JAX it is traced once too; PyTorch runs it eagerly, once per step."""
    model = tiny_trainer(kind)
    step, calls = model.train_step, []
    model.train_step = lambda *args: calls.append(1) or step(*args)  # JAX's train_step takes (state, data)
    images = np.random.default_rng(0).uniform(-1, 1, (8, 8, 8, 1)).astype("float32")
    labels = np.arange(8) % 2
    model.fit(images, labels if kind == "diffusion" else None, batch_size=4, epochs=2, verbose=0)
    assert len(calls) == (4 if BACKEND == "torch" else 1)
    assert int(to_numpy(model.optimizer.iterations)) == 4


def test_build_optimizer_before_fit_waits_for_unbuilt_layers():
    """A sub-layer without variables yet would leave them out of the optimizer: then the step builds it."""
    model = keras.Sequential([keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam())
    kd.backend.build_optimizer_before_fit(model)
    assert not model.optimizer.built
    model.build((None, 2))
    kd.backend.build_optimizer_before_fit(model)
    assert model.optimizer.built == (BACKEND == "tensorflow")
