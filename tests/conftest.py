"""Pytest setup: one backend per process (``KERAS_BACKEND``), fixed seeds, small thread pools."""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same global seed, so a failure reproduces."""
    keras.utils.set_random_seed(0)
    yield
