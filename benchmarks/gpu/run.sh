#!/usr/bin/env bash
# The GPU benchmark in one command, on a fresh CUDA machine (about 7 minutes on an H100/H200):
#   once, here:  benchmarks/gpu/fetch_wheels.sh     (the wheels it carries, into .whl/)
#   there:       benchmarks/gpu/run.sh              (with .whl carried along)
# Installs the carried wheels into /tmp/site, runs bench_diffusion.py inside its time budget
# (BUDGET_S, default 400 s of measuring after the models are built) and copies the rewritten
# benchmarks/RESULTS.md and backdrop/data/measured.json to $OUT (or ./gpu-out) to bring back.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="$PWD/src:/tmp/site" PYTHONUNBUFFERED=1 BACKDROP_MODEL_CONFIGS=/tmp/model-configs
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 benchmarks/bench_diffusion.py --budget-s "${BUDGET_S:-400}" "$@"
dest="${OUT:-gpu-out}"
mkdir -p "$dest"
cp benchmarks/RESULTS.md src/backdrop/data/measured.json "$dest/"
echo "results in $dest"
