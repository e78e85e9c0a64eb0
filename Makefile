# The two commands of the README: `make demo` and `make test`. Each creates .venv when it is missing and
# installs the package with what it needs (only Python, pip and gcc are assumed).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rsvg-installed
DEMO := demo_out

.PHONY: demo test test-paper lint install browser clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/rsvg demo --out $(DEMO)

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts

# Headless Chromium and its driver for the web end-to-end test (Debian packages; skipped where apt is unavailable).
browser:
	@command -v chromedriver >/dev/null 2>&1 || { if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "note: no chromedriver and no root apt-get: the browser test will be skipped"; fi; }

test: $(STAMP) lint browser
	$(BIN)/python -m pytest

# The paper's config itself (ResNet-50, bert-base shape, 640 px) and the Table II configs (DarkNet-53 at 256 px,
# ResNet-50 at 300 or 640 px) memorising eight samples: about an hour on 2 CPU cores for the first and tens of
# minutes for each of the nine others, minutes on a GPU; not part of `make test` (tests/engine/test_paper_config.py
# says why).
test-paper: $(STAMP)
	$(BIN)/python -m pytest -m paper_scale tests/engine/test_paper_config.py tests/engine/test_paper_table2.py

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
