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
	$(BIN)/autotune synth $(DEMO)/logs --preset avazu --queries 500000 --seed 7 --format parquet
	$(BIN)/autotune analyze $(DEMO)/logs --model $(DEMO)/logs/model.toml --row-map identity --name avazu --out $(DEMO)/profile
	rm -rf runs/demo-avazu  # a fresh run each time: the profile above is rewritten, and a run belongs to one profile
	$(BIN)/autotune search --hw ascend910b --profile $(DEMO)/profile --run demo-avazu --n-trials 300 --timeout 90
	$(BIN)/autotune show demo-avazu
	$(BIN)/autotune export demo-avazu --format torchrec --out $(DEMO)/plan.torchrec.json
	$(BIN)/autotune export demo-avazu --format json --out $(DEMO)/mapping.export.json
	@echo "demo: logs and profile in $(DEMO)/, the tuned run in runs/demo-avazu/ (report.md, mapping.json), its exports in $(DEMO)/ (plan.torchrec.json, mapping.export.json)" >&2

test: $(VENV)/.installed
	$(BIN)/ruff check autotune analytics tests benchmarks
	$(BIN)/python -m pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check autotune analytics tests benchmarks
	$(BIN)/ruff format --check autotune analytics tests benchmarks

clean:
	rm -rf $(VENV) runs/demo runs/demo-avazu .pytest_cache
