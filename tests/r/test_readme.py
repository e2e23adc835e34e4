"""The README's R section as a new user meets it: its commands run verbatim, in order, in a copy of the checkout,
with an empty R library and no Python environment, so that ``install_kerasdit()`` makes the reticulate virtualenv
from the checkout's own Python source. Only the scripts get extra flags (appended, so they override the README's:
a tiny data set, model and epoch count). Then the errors a user of that JAX-only environment meets: another
backend, a missing model, the old ``rmarkdown::render()`` call with a relative path.

The system packages of the README's ``apt-get`` line are checked, not installed: ``install_ci.sh`` installed them.
pip installs from the wheels ``install_ci.sh`` downloaded once (``PIP_FIND_LINKS``, ``PIP_NO_INDEX``), as from its
cache, and does not byte-compile (``PIP_NO_COMPILE``); both only save time. Each step's wall time is printed
(``pytest -s``) and written to ``readme_timings.json`` in the test's temporary folder.
"""

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from tests.r.conftest import REPO, backend_under_test, run

WHEELS = pathlib.Path(os.environ.get("KERAS_DIT_R_WHEELS", pathlib.Path.home() / ".cache/keras_dit/r-wheels"))

# Appended to each script's README line: 64 synthetic 16 x 16 grayscale images in 4 classes, the smallest models.
TINY = ["--data", "synthetic", "--image_size", "16", "--channels", "1", "--batch_size", "16"]
SCRIPT_FLAGS = {
    "train_vae.R": [*TINY, "--preset", "kl-f4-tiny", "--epochs", "1", "--perceptual_weight", "0"],
    "scale_factor.R": [*TINY, "--max_batches", "2"],
    "train_DiT.R": [*TINY, "--hidden_size", "16", "--depth", "1", "--num_heads", "2", "--epochs", "1",
                    "--sample_steps", "2"],
}
COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", "outputs", ".venv", "runs",
                                     "keras-dit-demo", ".pytest_cache")


def readme_r_commands():
    """The shell commands of the README's R section, continuation lines joined."""
    section = (REPO / "README.md").read_text().split("\n## R\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert blocks, "the README's R section has no bash block"
    return [line.strip() for line in blocks[0].replace("\\\n", " ").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def bare_user(tmp_path_factory):
    """A copy of the checkout and the environment of a user who has only the system packages: an empty R
    library, no virtualenvs, no RETICULATE_PYTHON and nothing of this checkout on the Python path."""
    root = tmp_path_factory.mktemp("readme")
    checkout = root / "keras_dit"
    shutil.copytree(REPO, checkout, symlinks=True, ignore=COPY_IGNORE)
    (root / "library").mkdir()
    drop = {"RETICULATE_PYTHON", "PYTHONPATH", "KERAS_BACKEND", "PYTHONHOME", "VIRTUAL_ENV", "R_LIBS", "XLA_FLAGS"}
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env.update(R_LIBS=str(root / "library"), WORKON_HOME=str(root / "virtualenvs"), PIP_NO_COMPILE="1",
               TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    if (WHEELS / ".pyproject").is_file():  # install_ci.sh downloaded them; else pip uses the network
        env.update(PIP_FIND_LINKS=str(WHEELS), PIP_NO_INDEX="1")
    return root, checkout, env


def timed(timings, name, command, env, cwd, timeout=900):
    start = time.monotonic()
    result = run(["bash", "-c", command], env, timeout=timeout, cwd=cwd)
    timings[name] = round(time.monotonic() - start, 1)
    return result


@pytest.mark.large
def test_readme_r_section_from_a_bare_machine(bare_user):
    backend_under_test("jax")
    root, checkout, env = bare_user
    commands = readme_r_commands()
    timings = {}
    apt = commands.pop(0)
    assert "apt-get install" in apt
    for package in apt.split("apt-get install -y", 1)[1].split():
        if package == "python3-venv":  # a Python that makes virtualenvs: Debian's needs the package
            assert subprocess.run(["python3", "-c", "import ensurepip"]).returncode == 0
        else:
            assert subprocess.run(["dpkg", "-s", package], capture_output=True).returncode == 0, package
    for command in commands:
        words = shlex.split(command)
        script = os.path.basename(words[1]) if words[0] == "Rscript" and words[1].endswith(".R") else None
        if script:
            command = " ".join([command, *SCRIPT_FLAGS[script]])
        result = timed(timings, script or command, command, env, checkout)
        assert result.returncode == 0, f"{command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    (root / "readme_timings.json").write_text(json.dumps(timings, indent=1))
    print("README R section, seconds per step:", json.dumps(timings, indent=1))

    # install_kerasdit() made the environment reticulate used, from the checkout's source, with numpy < 2.
    python = root / "virtualenvs" / "r-kerasdit" / "bin" / "python"
    versions = subprocess.run([str(python), "-c", "import numpy, keras_dit, jax; print(numpy.__version__, "
                               "keras_dit.__file__)"], capture_output=True, text=True, env=env, cwd=root)
    numpy_version, location = versions.stdout.split()
    assert numpy_version < "2" and str(root / "virtualenvs") in location
    assert subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True).returncode != 0

    out = checkout / "outputs"
    grid = np.asarray(Image.open(out / "vae_reconstructions.png"))
    assert grid.shape[:2] == (2 * 16 + 2, 8 * 16 + 7 * 2)  # inputs above reconstructions, 8 per row, padding 2
    factor = float((out / "scale_factor.txt").read_text())
    assert np.isfinite(factor) and factor > 0
    samples = np.asarray(Image.open(out / "samples.png"))
    assert samples.shape[:2] == (2 * 16 + 2, 2 * 16 + 2)  # 4 classes in a 2 x 2 grid
    page = (out / "Inference.html").read_text()
    assert len(re.findall(r'<img src="data:image/png;base64', page)) >= 4  # default and second sampler, CFG, negative
    assert "## Error" not in page and "backend jax" in page
    assert f"scale factor {factor:.4g}" in page  # the VAE and its scale factor came along in dit.keras

    # The same render from another folder, with the path relative to it.
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    render = timed(timings, "render_notebook() from another folder", 'Rscript -e \'kerasdit::render_notebook('
                   '"../keras_dit/outputs/dit.keras", backend = "jax", output_file = "notebook.html", num_steps = 2)\'',
                   env, elsewhere)
    assert render.returncode == 0, render.stderr[-3000:]
    assert len(re.findall(r'<img src="data:image/png;base64', (elsewhere / "notebook.html").read_text())) >= 4

    # A backend the environment lacks: named, with the install call that adds it.
    other = run(["Rscript", "examples/train_DiT.R", *SCRIPT_FLAGS["train_DiT.R"], "--backend", "tensorflow"], env,
                cwd=checkout, timeout=300)
    assert other.returncode == 1
    assert "The Keras backend 'tensorflow' is not installed" in other.stderr
    assert 'install_kerasdit(backend = c("jax", "tensorflow"))' in other.stderr
    assert 'use_backend("jax") (in a script: --backend jax)' in other.stderr

    # No model: an error and a non-zero exit, from render_notebook() and from rmarkdown::render() itself.
    missing = run(["Rscript", "-e", 'kerasdit::render_notebook("outputs/none.keras", backend = "jax")'], env,
                  cwd=checkout, timeout=300)
    assert missing.returncode == 1 and "No model file 'outputs/none.keras'" in missing.stderr
    direct = run(["Rscript", "-e", 'rmarkdown::render("examples/Inference.Rmd", '
                  'params = list(model = normalizePath("outputs/none.keras"), backend = "jax"))'], env,
                 cwd=checkout, timeout=300)
    assert direct.returncode != 0 and "No trained model at" in direct.stderr
