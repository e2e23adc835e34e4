"""Fixtures of the R tests: the R package built and installed from this checkout, and the environment that
runs R.

What they need (R, the Debian R packages, rpy2 3.5, and a numpy<2 virtualenv for reticulate) is installed by
``bash r_package/tools/install_ci.sh``; without it these tests are skipped with that instruction. Whole-stack
tests run ``Rscript`` in a subprocess (reticulate inside rpy2 crashes the interpreter); rpy2 drives only the
pure-R functions.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from keras_dit import backend as kd_backend

REPO = pathlib.Path(__file__).resolve().parents[2]
R_PACKAGE = REPO / "r_package"
VENV = pathlib.Path(os.environ.get("KERAS_DIT_R_VENV", pathlib.Path.home() / ".cache/keras_dit/r-venv"))
VENV_PYTHON = VENV / "bin" / "python"
INSTALL_HINT = "run `bash r_package/tools/install_ci.sh` (as root) to install R and the R test environment"


def run(command, env, timeout=600, cwd=None):
    """Run a command; return the CompletedProcess (text output), echoing its output on failure."""
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if result.returncode:
        sys.stdout.write(result.stdout[-4000:])
        sys.stderr.write(result.stderr[-4000:])
    return result


@pytest.fixture(scope="session")
def r_library(tmp_path_factory):
    """A library with kerasdit installed from a tarball of this checkout (`R CMD build` + `R CMD INSTALL`)."""
    if shutil.which("Rscript") is None:
        pytest.skip(f"R is not installed: {INSTALL_HINT}")
    build = tmp_path_factory.mktemp("r_build")
    library = build / "library"
    library.mkdir()
    env = {**os.environ, "R_LIBS": str(library)}
    built = run(["R", "CMD", "build", "--no-build-vignettes", "--no-manual", str(R_PACKAGE)], env, cwd=build)
    assert built.returncode == 0, built.stderr
    tarball = next(build.glob("kerasdit_*.tar.gz"))
    installed = run(["R", "CMD", "INSTALL", "--no-test-load", "-l", str(library), str(tarball)], env)
    assert installed.returncode == 0, installed.stderr
    return library


@pytest.fixture(scope="session")
def r_env(r_library):
    """Environment of an Rscript subprocess: the installed package, reticulate on the numpy<2 virtualenv, and this
    checkout's keras_dit first on the Python path."""
    if not VENV_PYTHON.exists():
        pytest.skip(f"No reticulate virtualenv at {VENV}: {INSTALL_HINT}")
    env = {key: value for key, value in os.environ.items() if key not in ("KERAS_BACKEND", "PYTHONHOME")}
    env.update(
        R_LIBS=str(r_library),
        RETICULATE_PYTHON=str(VENV_PYTHON),
        PYTHONPATH=str(REPO),
        TF_CPP_MIN_LOG_LEVEL="2",
        CUDA_VISIBLE_DEVICES="",
        # The virtualenv's jaxlib 0.7 aborts on the XLA:CPU flag that `import keras_dit` set for this process's
        # jaxlib (backend.tune_xla_cpu); its own import of keras_dit decides for itself.
        XLA_FLAGS=os.environ.get("XLA_FLAGS", "").replace(kd_backend.XLA_CPU_FLAGS, "").strip(),
    )
    return env


def backend_under_test(backend):
    """Run R tests of ``backend`` only in the pytest run of that backend (tests/run_all.sh runs one per backend)."""
    current = os.environ.get("KERAS_BACKEND", "jax")
    if current != backend:
        pytest.skip(f"R tests on {backend} run in the KERAS_BACKEND={backend} pass (this is {current}).")


@pytest.fixture(scope="session")
def rpy2_kerasdit(r_library):
    """rpy2's embedded R with kerasdit attached (pure-R use only: no Python through reticulate)."""
    os.environ["R_LIBS"] = str(r_library)
    library_path = os.environ.get("LD_LIBRARY_PATH")
    try:
        import rpy2.robjects as ro
    except Exception as error:  # ImportError, or R failing to start
        pytest.skip(f"rpy2 does not load ({type(error).__name__}: {error}): {INSTALL_HINT}")
    finally:
        # Loading R prepends /usr/lib/x86_64-linux-gnu to LD_LIBRARY_PATH, which makes a Python subprocess
        # started later by another test pick Debian's libpython (and lose its site-packages). R is loaded now.
        if library_path is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = library_path
    ro.r(f'.libPaths(c("{r_library}", .libPaths())); suppressPackageStartupMessages(library(kerasdit))')
    return ro
