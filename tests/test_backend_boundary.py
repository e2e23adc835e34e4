"""Framework imports (TensorFlow, JAX, PyTorch) live in keras_dit/backend.py and the converters only; the
tf.distribute helpers kept there for keras_dit.distribution; no module imports from a package floor above its own."""

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


# Package floors, bottom to top: a module imports only from its own floor or below (keras_dit/__init__.py is on top).
FLOORS = {name: floor for floor, names in enumerate([
    ("validation", "backend", "distribution", "ema", "optimizers", "training_callbacks"),
    ("layers", "losses", "diffusion"), ("conditioning",), ("models", "latent", "data"), ("metrics", "tasks"),
    ("convert",), ("cli",), ("__init__",)]) for name in names}


def floor_of(module):
    """The floor of dotted ``module`` under keras_dit (``keras_dit.models.dit`` -> 3); ``keras_dit`` itself: top."""
    parts = module.split(".")
    return FLOORS[parts[1] if len(parts) > 1 else "__init__"]


def upward_imports(source, relative):
    """``file:line imports X (floor n > floor m)`` for every import (relative or absolute, at any depth) in the
    Python ``source`` of ``relative`` (``keras_dit/models/dit.py``) from a floor above its own."""
    package = relative[:-3].replace(os.sep, "/").split("/")
    own = floor_of(".".join(package))
    package = package[:-1]  # where a relative import starts (for an __init__.py, its own package)
    found = []
    for node in ast.walk(ast.parse(source, relative)):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module
            modules = [f"{base}.{alias.name}" if base == "keras_dit" else base for alias in node.names]
        else:
            continue
        found += [f"{relative}:{node.lineno} imports {module} (floor {floor_of(module)} > floor {own})"
                  for module in modules if module.split(".")[0] == "keras_dit" and floor_of(module) > own]
    return found


def test_no_import_from_a_higher_floor():
    offenders = []
    for folder, _, files in os.walk(PACKAGE):
        for file in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, file)
            with open(path) as f:
                offenders += upward_imports(f.read(), os.path.relpath(path, os.path.dirname(PACKAGE)))
    assert not offenders, "imports against the package floors: " + "; ".join(offenders)


def test_upward_imports_are_found_in_every_form():
    source = ("import keras_dit.cli\nfrom keras_dit import metrics, validation\nfrom ..objective import Objective\n"
              "def f():\n    from ...tasks import DiffusionModel\n    from ... import models\n")
    found = upward_imports(source, "keras_dit/diffusion/discrete/example.py")
    assert found == ["keras_dit/diffusion/discrete/example.py:1 imports keras_dit.cli (floor 6 > floor 1)",
                     "keras_dit/diffusion/discrete/example.py:2 imports keras_dit.metrics (floor 4 > floor 1)",
                     "keras_dit/diffusion/discrete/example.py:5 imports keras_dit.tasks (floor 4 > floor 1)",
                     "keras_dit/diffusion/discrete/example.py:6 imports keras_dit.models (floor 3 > floor 1)"]
    assert upward_imports("from . import builders\nimport keras_dit\n", "keras_dit/cli/__init__.py") == [
        "keras_dit/cli/__init__.py:2 imports keras_dit (floor 7 > floor 6)"]


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
