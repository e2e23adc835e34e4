"""The ``distribution:`` config section and ``keras-dit train --devices N`` (simulated CPU devices)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from keras_dit.cli import main
from keras_dit.cli.config import load_config
from tests.helpers import BACKEND, fresh_jax_env, run_error, tiny_cli


def test_distribution_section_defaults_and_devices_option(capsys):
    config = load_config("digits", ["distribution.type=model_parallel", "distribution.model_axis=2"])
    assert config["distribution.type"] == "model_parallel" and config["distribution.devices"] is None
    main(["train", "-c", "digits", "--devices", "2", "--print-config"])
    out = capsys.readouterr().out
    assert "distribution:\n  type: data_parallel\n  devices: 2\n" in out


def test_distribution_section_errors(capsys, tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("distribution:\n  type: data_parallel\n  device: 2\n")
    line = run_error(capsys, ["train", "-c", str(path)])
    assert "'distribution.device'" in line and "did you mean 'distribution.devices'" in line
    path.write_text("distribution:\n  devices: two\n")
    line = run_error(capsys, ["train", "-c", str(path)])
    assert "distribution.devices" in line and "must be an integer" in line
    line = run_error(capsys, ["train", "--set", "distribution.type=pipeline"])
    assert "must be one of ['none', 'data_parallel', 'model_parallel']" in line


@pytest.mark.skipif(BACKEND != "torch", reason="the torch backend has no multi-device training")
def test_torch_refuses_multi_device(capsys, tmp_path):
    line = run_error(capsys, ["train", "-c", "digits", "--set", f"output_dir={tmp_path}/run", "--devices", "2"])
    assert "not supported on the torch backend" in line


# Simulated devices must be configured before the backend starts: in a fresh process.
SCRIPT = textwrap.dedent(
    """
    import sys
    if sys.argv[1] == "tensorflow":
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from keras_dit.cli import main
    main(["train", *sys.argv[2:]])
    """
)


@pytest.mark.large
@pytest.mark.skipif(BACKEND == "torch", reason="multi-device training runs on JAX and TensorFlow")
def test_train_data_parallel_on_two_simulated_devices(tmp_path):
    out = str(tmp_path / "run")
    args = [*tiny_cli(out), "--set", "train.epochs=1",
            "--set", "train.sample_every=0", "--set", "train.tensorboard=false", "--devices", "2"]
    env = dict(os.environ, KERAS_BACKEND=BACKEND, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=os.getcwd())
    result = subprocess.run([sys.executable, "-c", SCRIPT, BACKEND, *args], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.getsize(os.path.join(out, "model.keras")) > 0
    with open(os.path.join(out, "config.yaml")) as f:
        assert "type: data_parallel" in f.read()


DEMO = textwrap.dedent(
    """
    import json, sys
    import keras
    from keras_dit.cli import main
    main(["demo", *sys.argv[1:]])
    print(json.dumps({"devices": len(keras.distribution.list_devices())}))
    """
)


@pytest.mark.large
@pytest.mark.skipif(BACKEND != "jax", reason="distribution.split_cpu splits the host CPU on JAX")
@pytest.mark.skipif(os.cpu_count() < 2, reason="splits a host of several cores")
def test_demo_trains_over_the_split_host_cpu_and_samples_on_one_device(tmp_path):
    out = str(tmp_path / "demo")
    args = [*tiny_cli(out), "--set", "train.epochs=1", "--set", "train.tensorboard=false",
            "--set", "distribution.split_cpu=true"]
    result = subprocess.run([sys.executable, "-c", DEMO, *args], env=fresh_jax_env(), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["devices"] >= 2  # one per core
    assert "recognised as their class" in open(os.path.join(out, "report.txt")).read()
    assert os.path.getsize(os.path.join(out, "samples", "samples.npz")) > 0
