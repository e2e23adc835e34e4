"""Pytest setup: one backend per process (``KERAS_BACKEND``), fixed seeds, small thread pools."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # One compute thread per pytest-xdist worker: n workers on n cores, instead of n thread pools of n threads
    # fighting over them (PyTorch's OpenMP pool slows down many times when oversubscribed).
    for variable in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ.setdefault(variable, "1")
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()

import keras  # noqa: E402
import pytest  # noqa: E402


if keras.backend.backend() == "jax":
    # Most of JAX's test time is XLA compiling small functions (each weight initialiser shape, each step);
    # a persistent cache makes later runs on the same machine skip that.
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.expanduser("~/.cache/keras_dit/jax-compilation"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    # Start JAX on its one CPU device now: the digits preset's distribution.split_cpu then leaves every test
    # process as it is (it splits only a JAX that has not started); tests that split the CPU do it in subprocesses.
    # keras_dit first: its import tunes XLA:CPU before the client starts (tests/test_backend.py checks it).
    import keras_dit  # noqa: F401

    jax.devices()


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global seed, so a failure reproduces."""
    keras.utils.set_random_seed(0)
    yield
