# One-command setup + run.  Everything installs into .venv from nothing.
#   make demo    set up, then train a small CNN on CIFAR-10 and analyse it
#   make test    set up, then run the whole test suite headless
# torch: pinned CPU build by default.  For a CUDA build, override, e.g.
#   make test TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# torchvision (optional at run time: torchvision:NAME models; the tests' acceptance set)
TORCHVISION_SPEC ?= torchvision==0.28.0
BIN := $(VENV)/bin
SHARED_DATA := $(abspath ../shared/data)
export CNNVIS_DATA ?= $(if $(wildcard $(SHARED_DATA)/cifar10),$(SHARED_DATA),)

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q $(TORCHVISION_SPEC)
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/cnnvis demo

test: setup
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check cnnvis_gl tests tools

bench: setup
	$(BIN)/python tools/bench_stats.py

clean:
	rm -rf $(VENV) build dist *.egg-info
