#!/usr/bin/env bash
# Installs everything the tests need, then runs the whole suite once per Keras backend, each in its own
# process (a Keras backend is fixed at import). Extra arguments go to pytest, e.g. `-m "not large"`.
# BACKENDS="jax" limits the run to some backends; WORKERS sets pytest-xdist's process count (default 2).
set -u
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -e ".[test]" || { echo "pip install failed"; exit 1; }
# R, its packages (Debian), rpy2 and the numpy<2 virtualenv reticulate uses (reused when present).
bash r_package/tools/install_ci.sh || { echo "install_ci.sh (R test environment) failed"; exit 1; }

reports=$(mktemp -d)
status=0
for backend in ${BACKENDS:-jax tensorflow torch}; do
  echo "=== KERAS_BACKEND=$backend"
  KERAS_BACKEND=$backend python3 -m pytest -n "${WORKERS:-2}" --durations=15 --junitxml="$reports/$backend.xml" "$@" || status=1
done

python3 - "$reports" <<'PY'
import pathlib, sys, xml.etree.ElementTree as ET
total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
for report in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    suite = ET.parse(report).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    counts = {k: int(suite.get(k, 0)) for k in total}
    print(f"{report.stem}: {counts['tests']} tests, {counts['failures'] + counts['errors']} failed, {counts['skipped']} skipped")
    for k in total:
        total[k] += counts[k]
failed = total["failures"] + total["errors"]
print(f"all backends: {total['tests'] - failed - total['skipped']} passed, {failed} failed, {total['skipped']} skipped")
PY
exit $status
