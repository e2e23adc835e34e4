"""The R package end to end, in ``Rscript`` subprocesses: the testthat suite on TensorFlow and on JAX, the three
scripts on a tiny config (JAX) followed by rendering ``Inference.Rmd`` on the model they trained, and the clear errors
of a script without its data, an unknown backend and a missing Python package."""

import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.r.conftest import R_PACKAGE, REPO, backend_under_test, run

SCRIPTS = ["train_vae.R", "scale_factor.R", "train_DiT.R"]
# A tiny run: 64 synthetic 16 x 16 grayscale images in 4 classes, the smallest VAE and DiT, one epoch each.
TINY = ["--data", "synthetic", "--image_size", "16", "--channels", "1", "--batch_size", "16"]


def rscript(args, env, timeout=600):
    return run(["Rscript", *args], env, timeout=timeout)


def test_examples_are_the_package_files():
    """examples/ links to the installed scripts and the vignette, so the two can never drift apart."""
    pairs = [(REPO / "examples" / name, R_PACKAGE / "inst" / "scripts" / name) for name in SCRIPTS]
    pairs.append((REPO / "examples" / "Inference.Rmd", R_PACKAGE / "vignettes" / "Inference.Rmd"))
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


@pytest.mark.large
def test_scripts_then_inference_notebook(r_env, tmp_path):
    # One backend for the whole chain (the slowest R test); the testthat suite covers both.
    backend = "jax"
    backend_under_test(backend)
    scripts = R_PACKAGE / "inst" / "scripts"
    out = tmp_path / "outputs"
    common = [*TINY, "--backend", backend, "--output", str(out)]
    vae = rscript([str(scripts / "train_vae.R"), *common, "--preset", "kl-f4-tiny", "--epochs", "1",
                   "--perceptual_weight", "0"], r_env)
    assert vae.returncode == 0, vae.stderr[-3000:]
    assert (out / "vae.keras").is_file() and "Saved" in vae.stderr
    grid = np.asarray(Image.open(out / "vae_reconstructions.png"))
    assert grid.shape[:2] == (2 * 16 + 1, 8 * 16 + 7)  # inputs above reconstructions, 8 per row

    scale = rscript([str(scripts / "scale_factor.R"), *common, "--vae", str(out / "vae.keras"),
                     "--max_batches", "2"], r_env)
    assert scale.returncode == 0, scale.stderr[-3000:]
    factor = float((out / "scale_factor.txt").read_text())
    assert np.isfinite(factor) and factor > 0

    dit = rscript([str(scripts / "train_DiT.R"), *common, "--vae", str(out / "vae.keras"), "--hidden_size", "16",
                   "--depth", "1", "--num_heads", "2", "--epochs", "1", "--sample_steps", "2"], r_env)
    assert dit.returncode == 0, dit.stderr[-3000:]
    assert (out / "dit.keras").is_file()
    samples = np.asarray(Image.open(out / "samples.png"))
    assert samples.shape[:2] == (2 * 16 + 1, 2 * 16 + 1)  # 4 classes in a 2 x 2 grid

    html = tmp_path / "Inference.html"
    render = rscript(["-e", (
        f'rmarkdown::render("{R_PACKAGE / "vignettes" / "Inference.Rmd"}", output_file = "{html}", '
        f'intermediates_dir = "{tmp_path}", knit_root_dir = "{tmp_path}", quiet = TRUE, '
        f'params = list(model = "{out / "dit.keras"}", backend = "{backend}", num_steps = 2))'
    )], r_env)
    assert render.returncode == 0, render.stderr[-3000:]
    page = html.read_text()
    assert len(re.findall(r'<img src="data:image/png;base64', page)) >= 4  # DDIM, guided, negative, DDPM
    assert "shown, not run" not in page and "## Error" not in page
    assert f"backend {backend}" in page
    assert f"scale factor {factor:.4g}" in page  # the VAE and its scale factor came along in dit.keras


@pytest.mark.parametrize("script, args, message", [
    ("train_vae.R", ["--data", "/no/such/images"], "Error: Data '/no/such/images' is neither an existing folder"),
    ("train_vae.R", ["--backend", "pytorch"], 'Unknown Keras backend "pytorch"'),
    ("train_DiT.R", ["--epochs", "many"], "Option --epochs takes a number"),
    ("scale_factor.R", ["--vae", "/no/such/vae.keras"], "No model file '/no/such/vae.keras'. Train one first"),
])
def test_scripts_fail_clearly(r_env, script, args, message):
    result = rscript([str(R_PACKAGE / "inst" / "scripts" / script), *args], r_env, timeout=300)
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_python_package_missing_says_how_to_install(r_env, tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    env = {**r_env, "RETICULATE_PYTHON": str(bare / "bin" / "python"), "PYTHONPATH": ""}
    result = rscript(["-e", "library(kerasdit); dit(input_size = 8)"], env, timeout=300)
    assert result.returncode == 1
    assert "not installed" in result.stderr and "install_kerasdit()" in result.stderr
