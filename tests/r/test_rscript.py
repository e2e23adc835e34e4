"""The R package in ``Rscript`` subprocesses: the testthat suite on TensorFlow and on JAX, and the clear errors of a
script without its data, with an unknown backend, offline with the perceptual loss, and without the Python package.
The scripts and the notebook on a model they train run in test_readme.py, as the README's R section."""

import subprocess
import sys

import pytest

from tests.r.conftest import R_PACKAGE, REPO, backend_under_test, run

SCRIPTS = ["train_vae.R", "scale_factor.R", "train_DiT.R"]


def rscript(args, env, timeout=600):
    return run(["Rscript", *args], env, timeout=timeout)


def test_examples_are_the_package_files():
    """examples/ links to the installed scripts and the vignette, so the two can never drift apart."""
    pairs = [(REPO / "examples" / name, R_PACKAGE / "inst" / "scripts" / name) for name in SCRIPTS]
    pairs.append((REPO / "examples" / "Inference.Rmd", R_PACKAGE / "inst" / "notebooks" / "Inference.Rmd"))
    shipped = R_PACKAGE / "inst" / "python"  # the Python source install_kerasdit() installs is the checkout's
    for name in ("keras_dit", "pyproject.toml", "README.md"):
        assert (shipped / name).resolve() == (REPO / name).resolve()
    for example, source in pairs:
        assert example.resolve() == source.resolve(), f"{example} should link to {source}"


@pytest.mark.large
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_testthat_suite(r_env, backend):
    backend_under_test(backend)
    result = rscript(["-e", (
        'testthat::test_dir("r_package/tests/testthat", package = "kerasdit", load_package = "installed", '
        'reporter = "summary", stop_on_failure = TRUE)'
    )], {**r_env, "KERAS_BACKEND": backend})
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Skipped" not in result.stdout, f"tests were skipped:\n{result.stdout[-3000:]}"
    assert "DONE" in result.stdout


@pytest.mark.parametrize("script, args, message", [
    ("train_vae.R", ["--data", "/no/such/images"],
     "Error in image_dataset(): 'data' = '/no/such/images' is neither an existing folder"),
    ("train_vae.R", ["--backend", "pytorch"], 'Error in use_backend(): \'backend\' must be one of "tensorflow"'),
    ("train_DiT.R", ["--epochs", "many"], "Option --epochs takes a number"),
    ("scale_factor.R", ["--vae", "/no/such/vae.keras"], "Error in load_model(): No model file '/no/such/vae.keras'"),
])
def test_scripts_fail_clearly(r_env, script, args, message):
    backend_under_test("jax")  # R and Python code the same on every pass: once is enough
    result = rscript([str(R_PACKAGE / "inst" / "scripts" / script), *args], r_env, timeout=300)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_offline_perceptual_loss_names_the_script_flags(r_env, tmp_path):
    """Without network (here: a proxy nobody listens on, and an empty Keras cache) the perceptual loss cannot get its
    ImageNet weights; the script says which of its flags train without them."""
    backend_under_test("jax")
    env = {**r_env, "KERAS_HOME": str(tmp_path / "keras"), "https_proxy": "http://127.0.0.1:9",
           "HTTPS_PROXY": "http://127.0.0.1:9"}
    result = rscript([str(R_PACKAGE / "inst" / "scripts" / "train_vae.R"), "--data", "synthetic", "--image_size", "16",
                      "--channels", "1", "--batch_size", "16", "--preset", "kl-f4-tiny", "--backend", "jax",
                      "--perceptual_weight", "1", "--output", str(tmp_path / "outputs")], env, timeout=300)
    assert result.returncode == 1
    assert "Error in train_vae(): Could not get the ImageNet VGG19 weights" in result.stderr
    assert "run the script with --perceptual_weight 0, or with --vgg_weights PATH" in result.stderr
    assert "VGGPerceptualLoss(" not in result.stderr and "Traceback" not in result.stderr


def test_python_package_missing_says_how_to_install(r_env, tmp_path):
    backend_under_test("jax")
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    env = {**r_env, "RETICULATE_PYTHON": str(bare / "bin" / "python"), "PYTHONPATH": ""}
    result = rscript(["-e", "library(kerasdit); dit(input_size = 8)"], env, timeout=300)
    assert result.returncode == 1
    assert "The Python package keras_dit is not installed" in result.stderr
    assert "kerasdit::install_kerasdit()" in result.stderr and "pip install" not in result.stderr
