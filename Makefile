# One command each: `make run` starts the embedded stack, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-peaks screenshot mutants clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/video2mp3 dev

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench

# Peak memory of auth, the gateway and the converter under their worst allowed load (DEPLOY.md).
bench-peaks: $(STAMP)
	$(BIN)/python -m bench.peaks

# The README's pictures of the page, from a real run (needs the system's chromium).
screenshot: $(STAMP)
	$(BIN)/python -m tests.e2e.screenshot docs/screenshot.png

# Breaks the code on purpose, mutant by mutant, and expects the guarding tests to fail.
mutants: $(STAMP)
	$(BIN)/python -m tests.mutants

clean:
	rm -rf $(VENV) var .pytest_cache
