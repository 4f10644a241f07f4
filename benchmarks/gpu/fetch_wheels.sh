#!/usr/bin/env bash
# Fetch, on a machine with the package index, the wheels benchmarks/gpu/run.sh installs on a GPU
# machine that cannot reach it. The GPU image (NVIDIA H100/H200, Python 3.12) has torch,
# transformers, accelerate, peft, numpy, pillow, opencv, httpx, jinja2, pyyaml and huggingface_hub;
# it lacks diffusers and what backdrop's imports need besides. Into .whl/ (git-ignored), ~8 MB.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
# the versions uv.lock pins, the ones the suite ran with; pip from the venv that holds uv (`make install`)
PY=${PYTHON:-.tools/bin/python}
pins=$($PY -c '
import tomllib
wanted = {"diffusers", "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "importlib-metadata", "zipp"}
with open("uv.lock", "rb") as f:
    print(" ".join(sorted(p["name"] + "==" + p["version"] for p in tomllib.load(f)["package"] if p["name"] in wanted)))
')
# shellcheck disable=SC2086
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $pins
ls -la .whl
