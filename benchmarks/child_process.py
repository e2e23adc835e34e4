"""Runs one measurement of a benchmark script in a fresh Python process and returns its JSON result.

A fresh process per measurement gives each its own peak memory and lets it pick its own Keras backend or dtype
policy. The child prints its result as the last line of stdout that starts with ``{``.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(script, argv, what, **env):
    """``python script *argv`` with the repository importable (before any ``PYTHONPATH`` already set) and ``env``
    added; its JSON result as a dict."""
    done = subprocess.run(
        [sys.executable, os.path.abspath(script), *argv], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])), **env),
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"{what} failed (exit status {done.returncode})")
    return json.loads(lines[-1])


# Runs that are a backend with a setting: (Keras backend, extra worker arguments, extra environment).
VARIANTS = {
    "tensorflow-xla": ("tensorflow", ["--xla"], {}),  # the worker compiles with jit_compile=True
    "torch-plain": ("torch", [], {"KERAS_DIT_STREAMLINE_TORCH": "0"}),  # traces without kd.backend's rewrites
}


def backend_worker(script, kind, backend, argv):
    """``script``'s ``kind`` worker (``--worker kind``) on a Keras ``backend`` or one of ``VARIANTS``."""
    keras_backend, extra_argv, extra_env = VARIANTS.get(backend, (backend, [], {}))
    return run_child(script, [*argv, "--worker", kind, *extra_argv], f"the {kind} worker on {backend}",
                     KERAS_BACKEND=keras_backend, TF_CPP_MIN_LOG_LEVEL="2", **extra_env)


def run_workers(script, parser, workers):
    """Parse ``parser``'s arguments (plus the hidden ``--worker`` / ``--xla``). As a worker: run the named one of
    ``workers`` (``"keras"`` and ``"diffusers"`` -> function of args), print its JSON result and return None.
    Otherwise run the diffusers worker, then the keras worker on each of ``args.backends``, each in a fresh
    process, and return ``(args, runs)``."""
    parser.add_argument("--worker", choices=sorted(workers), help=argparse.SUPPRESS)
    parser.add_argument("--xla", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(workers[args.worker](args)))
        return None
    argv = sys.argv[1:]
    runs = [backend_worker(script, "diffusers", "torch", argv)]
    runs += [backend_worker(script, "keras", backend, argv) for backend in args.backends]
    return args, runs
