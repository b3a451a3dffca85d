# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo run simulate test lint format bench clean

help:
	@echo "make demo      install into $(VENV) and stream the built-in simulator to the console"
	@echo "make run       install and run the real service (SQLite file, mainnet feed)"
	@echo "make simulate  run the xRocket simulator on 127.0.0.1:8765"
	@echo "make test      install, then ruff, mypy and the whole test suite"
	@echo "make lint      ruff and mypy only"
	@echo "make format    apply ruff's formatting and safe fixes"
	@echo "make bench     run the benchmarks in bench/"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall whenever the project's metadata changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/alerts demo

run: $(STAMP)
	$(BIN)/alerts run

simulate: $(STAMP)
	$(BIN)/alerts simulate

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/feed_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
