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

# Until the server exists, `serve` runs the audio core end to end on a real clip: audio to a
# spectrogram image and back, written to out/.
DEMO_AUDIO ?= ../shared/riffusion-reference/clip.wav

serve: setup
	@mkdir -p out
	@test -f "$(DEMO_AUDIO)" || $(BIN)/python -c "import numpy as n; from riffusion import Audio; \
	  t = n.arange(5 * 44100) / 44100; \
	  Audio(0.3 * n.sin(2 * n.pi * 220 * t * (1 + t / 10)), 44100).save('out/demo-input.wav')"
	$(BIN)/riffusion audio-to-image --audio "$$(test -f '$(DEMO_AUDIO)' && echo '$(DEMO_AUDIO)' \
	  || echo out/demo-input.wav)" --image out/demo.png --overwrite
	$(BIN)/riffusion image-to-audio --image out/demo.png --audio out/demo.wav --overwrite
	@echo "Wrote out/demo.png (spectrogram image) and out/demo.wav (reconstructed audio)."

lint: setup
	$(BIN)/ruff check riffusion tests bench

test: setup lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
