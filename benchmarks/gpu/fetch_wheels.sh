#!/usr/bin/env bash
# Fetch, on a machine with the package index, the wheels benchmarks/gpu/run.sh installs on a GPU
# machine that cannot reach it. The GPU image (NVIDIA H100/H200, Python 3.12) has torch,
# transformers, accelerate, peft, numpy, pillow, opencv, httpx, jinja2, pyyaml and huggingface_hub;
# it lacks diffusers and what backdrop's imports need besides. Into .whl/ (git-ignored), ~8 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
PY=${PYTHON:-.venv/bin/python}
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    diffusers==0.42.1 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5 \
    importlib-metadata
ls -la .whl
