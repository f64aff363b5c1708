# Two entry points on a fresh machine: `make serve` (the app) and `make test` (the test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Machines without an NVIDIA GPU pin torch 2.13.0 (a CPU build where one is on disk or on the index
# you use); machines with one take pip's default CUDA build. Override with `make TORCH_SPEC=...`.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)

.PHONY: setup serve test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps open_clip_torch==3.3.0
	touch $@

# The web app and the API (docs/api.md) on http://$(HOST):$(PORT)/. The model loads in the
# background; set MODEL to a local diffusers folder or .ckpt / .safetensors file where the Hugging
# Face Hub cannot be reached (the page says so if the model cannot be loaded).
HOST ?= 127.0.0.1
PORT ?= 3013
MODEL ?= riffusion/riffusion-model-v1

serve: setup
	$(BIN)/riffusion serve --host $(HOST) --port $(PORT) --model $(MODEL)

lint: setup
	$(BIN)/ruff check riffusion tests bench
	$(BIN)/mypy

test: setup lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
