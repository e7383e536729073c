# The two commands of the README's quick start. Both work on a fresh machine with only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
DEMO := runs/demo

.PHONY: demo test lint clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "error: no python3.11 or python3 on PATH; install Python 3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(VENV)/.installed
	$(BIN)/autotune synth $(DEMO)/logs --preset criteo1tb --queries 200000 --seed 7 --format criteo
	$(BIN)/autotune analyze $(DEMO)/logs --format criteo --model $(DEMO)/logs/model.toml --out $(DEMO)/profile
	@echo "demo: profile written to $(DEMO)/profile (profile.json, counts.parquet)" >&2

test: $(VENV)/.installed
	$(BIN)/ruff check autotune analytics tests benchmarks
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check autotune analytics tests benchmarks
	$(BIN)/ruff format --check autotune analytics tests benchmarks

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
