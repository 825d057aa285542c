# One venv for the loop (.venv) and one for the Label Studio server (.venv-labelstudio):
# the server pins numpy>=2.2.6 while cellpose 3 pins numpy<2.1, so they cannot share one.
PYTHON ?= python3
VENV ?= .venv
LS_VENV ?= .venv-labelstudio
# Installed before anything else so that no resolver pulls an unpinned (CUDA) torch.
TORCH_SPEC ?= torch==2.13.0
LABEL_STUDIO_SPEC ?= label-studio==1.23.2
PIP = $(VENV)/bin/python -m pip
BIN = $(VENV)/bin

.PHONY: install install-labelstudio test demo bench bench-gpu device-prepare lint docs clean

install: $(VENV)/.installed $(LS_VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[dev]"
	$(VENV)/bin/python -c "import torch, cellpose, label_studio_sdk, modAL, sqlite_utils; print('loop env ok, torch', torch.__version__)"
	touch $@

install-labelstudio: $(LS_VENV)/.installed

$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q --upgrade pip
	$(LS_VENV)/bin/python -m pip install -q "$(LABEL_STUDIO_SPEC)"
	touch $@

test: install
	$(BIN)/pytest -q

demo: install
	$(BIN)/loop demo demo

bench: install
	$(BIN)/python -m bench.run

bench-gpu: install  # the prepared GPU bench: one GPU, 16 cores, under 8 minutes (bench/gpu.py)
	$(BIN)/python -m bench.gpu bench/results/$$(date +%F)-gpu.json

device-prepare: install  # wheels and images for the GPU bench on a machine without network (bench/device.sh)
	$(BIN)/python bench/device_prepare.py

docs: install  # the site in site/ (strict: a broken link or a stale reference fails)
	$(BIN)/python docs/generate.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lint: install
	$(BIN)/ruff check loop connectors tests
	$(BIN)/ruff format --check loop connectors tests

clean:
	rm -rf $(VENV) $(LS_VENV) .pytest_cache .ruff_cache
