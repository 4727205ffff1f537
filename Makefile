# XCloudFlow. `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint typecheck layers unit e2e bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/xcf server

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

layers: install
	$(BIN)/lint-imports

unit: install
	$(BIN)/python -m pytest -q -m "not e2e"

e2e: install
	$(BIN)/python -m pytest -q -m e2e

test: install lint typecheck layers
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python bench/state_backend.py
	$(BIN)/python bench/runs.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
