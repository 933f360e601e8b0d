# The two commands a new machine needs: `make demo` and `make test`. Both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TIER ?= S

.PHONY: install test lint demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

demo: install
	$(BIN)/registry demo

# For now: 1,000,000 merchant rows, ingest vs the polars read+write floor (bench/results/).
# The tiered harness (bench/run.py, TIER=S|M|L) replaces this when it lands.
bench: install
	$(BIN)/python -m bench.ingest_1m

clean:
	rm -rf $(VENV) registry-data .pytest_cache
