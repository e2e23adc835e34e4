"""Framework imports (TensorFlow, JAX, PyTorch) live in keras_dit/backend.py and the converters only; the
tf.distribute helpers kept there for keras_dit.distribution."""

import ast
import os

import keras
import pytest

import keras_dit as kd
from tests.helpers import BACKEND

FRAMEWORKS = {"tensorflow", "jax", "jaxlib", "torch"}
PACKAGE = os.path.dirname(kd.__file__)
ALLOWED = {os.path.join(PACKAGE, "backend.py"), os.path.join(PACKAGE, "convert")}


def framework_imports(path):
    """``(line, module)`` of every import of a framework in the Python file ``path``."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] in FRAMEWORKS]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module.split(".")[0] in FRAMEWORKS:
            found.append((node.lineno, node.module))
    return found


def test_framework_imports_only_in_backend_and_convert():
    offenders = []
    for folder, _, files in os.walk(PACKAGE):
        if any(folder == allowed or folder.startswith(allowed + os.sep) for allowed in ALLOWED):
            continue
        for file in files:
            path = os.path.join(folder, file)
            if file.endswith(".py") and path not in ALLOWED:
                offenders += [f"{os.path.relpath(path, PACKAGE)}:{line} imports {module}"
                              for line, module in framework_imports(path)]
    assert not offenders, "framework imports outside keras_dit/backend.py: " + "; ".join(offenders)


def test_replicas_in_sync_is_one_outside_a_strategy():
    assert kd.backend.replicas_in_sync() == 1
    loss = keras.ops.convert_to_tensor(3.0)
    assert float(kd.distribution.scale_loss_for_replicas(loss)) == 3.0


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute is TensorFlow's")
def test_mirrored_strategy_over_the_listed_devices():
    names = kd.backend.tensorflow_devices()
    assert names and all(":GPU:" in name or ":CPU:" in name for name in names)
    strategy = kd.backend.mirrored_strategy(names[:1])
    assert strategy.num_replicas_in_sync == 1
    with strategy.scope():
        assert kd.backend.replicas_in_sync() == 1
