#!/usr/bin/env bash
# Installs what the R tests (tests/r/) need on a fresh Debian machine, as root; every step is skipped when
# its result is already there, so running it again costs seconds.
#   1. R 4.2 and the R packages from Debian (reticulate, testthat, rmarkdown, roxygen2, png) and pandoc.
#   2. rpy2 3.5 in the calling Python (3.6 does not load against R 4.2).
#   3. A virtualenv for reticulate with numpy<2 (Debian's reticulate 1.28 cannot convert NumPy 2 arrays),
#      keras, tensorflow-cpu and jax, plus this checkout of keras_dit (editable, no deps).
#   4. The wheels that install_kerasdit(backend = "jax") installs, downloaded once into a folder: the README test
#      (tests/r/test_readme.py) makes its fresh virtualenv from them, as pip would from its cache, without the network.
# The virtualenv is $KERAS_DIT_R_VENV (default ~/.cache/keras_dit/r-venv); the tests point RETICULATE_PYTHON at it.
# The wheels are in $KERAS_DIT_R_WHEELS (default ~/.cache/keras_dit/r-wheels), downloaded again when pyproject.toml
# changes.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-python3}
venv=${KERAS_DIT_R_VENV:-$HOME/.cache/keras_dit/r-venv}
wheels=${KERAS_DIT_R_WHEELS:-$HOME/.cache/keras_dit/r-wheels}

missing=()
for pkg in r-base-core r-cran-reticulate r-cran-testthat r-cran-rmarkdown r-cran-roxygen2 r-cran-png pandoc; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# Debian's own python3 needs python3-venv to create virtualenvs.
python3 -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "install_ci.sh: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$python" -c "import rpy2, sys; sys.exit(not rpy2.__version__.startswith('3.5'))" 2>/dev/null ||
  "$python" -m pip install -q --disable-pip-version-check "rpy2>=3.5,<3.6"

if ! "$venv/bin/python" -c "import numpy, keras, jax, tensorflow, sklearn; assert numpy.__version__ < '2'" 2>/dev/null; then
  echo "install_ci.sh: installing the reticulate virtualenv $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "numpy>=1.26,<2" "keras==3.15.1" "tensorflow-cpu==2.21.0" \
    "jax[cpu]>=0.7.1,<0.8" "pyyaml>=6" "pillow>=10" "scikit-learn>=1.4" "setuptools>=68"
fi
# Always (re)point the editable install at this checkout: a few seconds.
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation -e "$repo"
stamp=$(sha256sum "$repo/pyproject.toml" | cut -c1-16)
if [ "$(cat "$wheels/.pyproject" 2>/dev/null)" != "$stamp" ]; then
  echo "install_ci.sh: downloading the wheels of install_kerasdit(backend = \"jax\") into $wheels"
  rm -rf "$wheels" && mkdir -p "$wheels"
  "$venv/bin/pip" download -q --disable-pip-version-check -d "$wheels" "$repo[jax]" "numpy>=1.26,<2" "setuptools>=68"
  echo "$stamp" > "$wheels/.pyproject"
fi
echo "install_ci.sh: R $(Rscript -e 'cat(format(getRversion()))'), reticulate Python $venv/bin/python"
