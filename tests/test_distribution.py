"""Multi-device training on simulated CPU devices equals a single-device run (JAX, keras.distribution)."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_dit as kd
from tests.helpers import BACKEND, fresh_jax_env

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np
    import keras_dit as kd

    kind = sys.argv[1]
    if kind != "single":
        keras.distribution.set_distribution(kd.distribution.make_distribution(kind, model_parallel_size=2))
    keras.utils.set_random_seed(0)
    backbone = kd.models.DiT(input_size=8, patch_size=2, in_channels=1, hidden_size=32, depth=2, num_heads=2,
                             num_classes=4, seed=1)
    model = kd.tasks.DiffusionModel(backbone, kd.diffusion.RectifiedFlow(), seed=2)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (32, 8, 8, 1)).astype("float32")
    labels = rng.integers(0, 4, 32).astype("int32")
    losses = model.fit(images, labels, batch_size=8, epochs=2, shuffle=False, verbose=0).history["loss"]
    qkv = backbone.get_layer("block_0").attn.qkv.kernel
    print(json.dumps({
        "devices": len(keras.distribution.list_devices()),
        "losses": losses,
        "weights": [np.asarray(w).astype("float64").ravel().tolist() for w in model.get_weights()[:8]],
        "qkv_sharding": str(getattr(qkv.value, "sharding", None)),
        "sharded": kd.distribution.sharded_weight_paths(backbone),
    }))
    """
)


def run(kind):
    env = dict(os.environ)
    env.update(KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=4", PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-c", SCRIPT, kind], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def single():
    return run("single")


@pytest.mark.large
@pytest.mark.skipif(BACKEND != "jax", reason="keras.distribution runs on the JAX backend")
@pytest.mark.parametrize("kind", ["data_parallel", "model_parallel"])
def test_multi_device_training_equals_single_device(kind, single):
    multi = run(kind)
    assert multi["devices"] == 4
    np.testing.assert_allclose(multi["losses"], single["losses"], rtol=1e-5)
    for a, b in zip(multi["weights"], single["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    if kind == "model_parallel":
        assert "block_0/attn/qkv/kernel" in multi["sharded"] and "block_1/mlp/fc2/kernel" in multi["sharded"]
        assert "model" in multi["qkv_sharding"] or "'model'" in multi["qkv_sharding"], multi["qkv_sharding"]


def test_bad_distribution_arguments():
    with pytest.raises(ValueError, match="Unknown distribution 'pipeline'"):
        kd.distribution.make_distribution("pipeline")
    with pytest.raises(ValueError, match="must divide the number of devices"):
        kd.distribution.make_distribution("model_parallel", devices=["cpu:0"] * 3, model_parallel_size=2)
    if BACKEND == "jax":
        with pytest.raises(ValueError, match=r"devices must be an integer >= 1 and <= \d+, got 0; the \d+ JAX"):
            kd.distribution.distribution_scope("data_parallel", devices=0)


# TensorFlow: MirroredStrategy over 2 logical CPU devices. The backbone trained as a plain regression is
# deterministic, so each step must equal the single-device one; the DiffusionModel's replicas draw their own
# noise, so there only the scale of the loss (a mean, not a sum over replicas) is compared.
TF_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, numpy as np
    import keras_dit as kd

    mirrored = sys.argv[1] == "mirrored"
    rng = np.random.default_rng(0)
    inputs = {"x": rng.uniform(-1, 1, (24, 8, 8, 1)).astype("float32"), "t": rng.uniform(0, 999, 24).astype("float32"),
              "condition": rng.integers(0, 4, 24).astype("int32")}
    targets = rng.normal(size=(24, 8, 8, 1)).astype("float32")
    scope = kd.distribution.distribution_scope("data_parallel", 2 if mirrored else 1)
    with scope:
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        keras.utils.set_random_seed(0)
        backbone = kd.models.DiT(input_size=8, patch_size=2, in_channels=1, hidden_size=32, depth=2, num_heads=2,
                                 num_classes=4, class_dropout_prob=0.0, seed=1)
        # Random adaLN weights (adaLN-Zero starts at zero) and plain SGD: a sum of the replicas' gradients instead
        # of their mean would double every update (Adam would hide it).
        backbone.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in backbone.get_weights()])
        backbone.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        regression = [float(backbone.train_on_batch({k: v[i:i + 8] for k, v in inputs.items()}, targets[i:i + 8]))
                      for i in range(0, 24, 8)]
        weights = [np.asarray(w).astype("float64").ravel().tolist() for w in backbone.get_weights()[:8]]
        model = kd.tasks.DiffusionModel(backbone, kd.diffusion.RectifiedFlow(), seed=2)
        model.compile(optimizer=keras.optimizers.SGD(0.01))
        history = model.fit(inputs["x"], inputs["condition"], batch_size=8, epochs=2, shuffle=False, verbose=0)
    print(json.dumps({"replicas": replicas, "regression": regression, "weights": weights,
                      "diffusion": history.history["loss"]}))
    """
)


@pytest.fixture(scope="module")
def tf_runs():
    def run_tf(kind):
        env = dict(os.environ, KERAS_BACKEND="tensorflow", PYTHONPATH=os.getcwd())
        out = subprocess.run([sys.executable, "-c", TF_SCRIPT, kind], env=env, capture_output=True, text=True,
                             timeout=600)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    return run_tf("single"), run_tf("mirrored")


@pytest.mark.large
@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute runs on the TensorFlow backend")
def test_mirrored_strategy_training_equals_single_device(tf_runs):
    single, mirrored = tf_runs
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    np.testing.assert_allclose(mirrored["regression"], single["regression"], rtol=1e-5)
    assert single["regression"][0] != single["regression"][-1]  # the steps trained
    for a, b in zip(mirrored["weights"], single["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.large
@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute runs on the TensorFlow backend")
def test_mirrored_diffusion_loss_is_a_mean_over_replicas(tf_runs):
    single, mirrored = tf_runs
    assert np.all(np.isfinite(mirrored["diffusion"]))
    np.testing.assert_allclose(mirrored["diffusion"], single["diffusion"], rtol=0.25)


def test_host_cpu_devices_leave_a_started_backend_alone():
    keras.ops.convert_to_numpy(keras.ops.ones(2))  # the backend has started: its devices are fixed
    before = os.environ.get("XLA_FLAGS")
    assert kd.distribution.host_cpu_devices(64, cores=2) is None
    assert os.environ.get("XLA_FLAGS") == before


SPLIT = "import json, keras_dit as kd; print(json.dumps(kd.distribution.host_cpu_devices(6, cores=4)))"


@pytest.mark.skipif(BACKEND != "jax", reason="the host CPU splits into several devices on JAX")
def test_host_cpu_devices_split_a_fresh_jax_into_devices_that_divide_the_batch():
    out = subprocess.run([sys.executable, "-c", SPLIT], env=fresh_jax_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["cpu:0", "cpu:1", "cpu:2"]  # 3 divides 6, 4 not
