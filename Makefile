# The two commands of the README: `make demo` and `make test`. Each creates .venv when it is missing and
# installs the package with what it needs (only Python, pip and gcc are assumed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rsvg-installed
DEMO := demo_out

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rsvg synth $(DEMO)/scenes --images 60 --seed 0 --size 800 --workers 2 --overwrite
	$(BIN)/rsvg check-data $(DEMO)/scenes

lint: $(STAMP)
	$(BIN)/ruff check src tests

test: $(STAMP) lint
	$(BIN)/python -m pytest

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
