"""Runs one measurement of a benchmark script in a fresh Python process and returns its JSON result.

A fresh process per measurement gives each its own peak memory and lets it pick its own Keras backend or dtype
policy. The child prints its result as the last line of stdout that starts with ``{``.
"""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(script, argv, what, **env):
    """``python script *argv`` with the repository importable and ``env`` added; its JSON result as a dict."""
    done = subprocess.run(
        [sys.executable, os.path.abspath(script), *argv], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=ROOT, **env),
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"{what} failed (exit status {done.returncode})")
    return json.loads(lines[-1])
