#!/usr/bin/env bash
# Training and sampling throughput against diffusers on a GPU, in under 5 minutes: DiT-XL/2 on 32x32x4 latents
# (256 px images), keras_dit on PyTorch and on JAX, each against diffusers' DiTTransformer2DModel on the same GPU.
#
#   bash benchmarks/gpu.sh            # results (tables and JSON lines) in $OUT, or benchmarks/results/
#   CONFIG=small BACKENDS=torch bash benchmarks/gpu.sh     # the same flow on a small DiT (a check on a CPU)
#
# For a machine with CUDA builds of PyTorch and JAX but neither keras nor diffusers (and no internet), fetch
# their wheels on a machine with PyPI, into .whl/ in the repository root, and carry that folder along:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     keras==3.15.1 namex optree diffusers==0.42.1 importlib_metadata zipp
# They are installed into /tmp/site (nothing of the machine's own is replaced). TensorFlow is left out: its GPU
# build is rarely on such machines; add tensorflow to BACKENDS where it is.
set -euo pipefail
cd "$(dirname "$0")/.."
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi
results=${OUT:-benchmarks/results}
mkdir -p "$results"
backends=${BACKENDS:-torch jax}
config=${CONFIG:-dit-xl2}
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "no nvidia-smi") \
  | tee "$results/gpu.txt"
export PYTHONUNBUFFERED=1
# Sampling: DDIM and DPM-Solver++, 8 images x 20 steps with CFG (a batch of 16 through the model per step); each
# command has 140 s, so that the whole script ends within 5 minutes (JAX compiles one program per sampler).
timeout 140 python3 benchmarks/sampler_speed.py --config $config --batch 8 --steps 20 --repeats 3 \
  --samplers ddim dpm_solver --backends $backends 2>&1 | grep -v "^I0000\|oneDNN" | tee "$results/sampler_speed_gpu.txt" \
  || echo "sampler_speed.py failed or ran out of time (exit status of the pipeline: $?)"
# Training (bfloat16 autocast on both sides) and 50 DDIM steps of sampling.
timeout 140 python3 benchmarks/dit_speed.py --config $config --precision bfloat16 --batch 32 --train-steps 10 \
  --sample-batch 8 --sample-steps 50 --backends $backends 2>&1 | grep -v "^I0000\|oneDNN" | tee "$results/dit_speed_gpu.txt" \
  || echo "dit_speed.py failed or ran out of time (exit status of the pipeline: $?)"
