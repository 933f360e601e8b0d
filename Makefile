# The two commands a new machine needs: `make demo` and `make test`. Both install first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TIER ?= S

.PHONY: install test lint demo bench bench-ingest-1m bench-ingest-steps bench-lookup bench-history bench-fixed bench-ledger bench-scaling clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[pipeline,dev]'
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# Two test processes (pytest-xdist), each with its own servers: the suite mostly waits on
# them. TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 2

test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal

demo: install
	$(BIN)/registry demo

# One tier (S by default; M, L): the polars read+write floor, the pipeline through the Prefect
# flows, the same without Prefect, and on tier S the reference pipeline; writes
# bench/results/{TIER}-{timestamp}.json. Inputs are generated once into bench/data/.
bench: install
	$(BIN)/python -m bench.run --tier $(TIER)

# 1,000,000 merchant rows: one upload's ingest against the floor, interleaved runs.
bench-ingest-1m: install
	$(BIN)/python -m bench.ingest_1m

# The same ingest step by step: each step's CPU time alone, and the least ratio to the floor
# that their sum allows on this machine's cores.
bench-ingest-steps: install
	$(BIN)/python -m bench.ingest_steps

# Point lookups on a 10,000,000-merchant snapshot on S3 over loopback (Ceph RGW when installed,
# else moto): snap.merchant() and DuckDB against a full scan, p50 and p95. The table is
# generated once into bench/data/; writes bench/results/lookup-{timestamp}.json.
bench-lookup: install
	$(BIN)/python -m bench.lookup

# Councils re-upload their lists daily for N days at a constant registry size of SIZE merchants:
# each day's publish, its read-and-merge stage, and a `registry run` with nothing new against a
# running Prefect server; day 45 against day 3. Writes bench/results/history-{timestamp}.json.
N ?= 45
SIZE ?= 9000
bench-history: install
	$(BIN)/python -m bench.history --days $(N) --merchants $(SIZE)

# `registry ingest` of a 12-row workbook and `registry publish` of a 12-merchant registry, whole
# processes against a Prefect server on loopback, RUNS times each, beside `import
# great_expectations` and `import prefect`. Writes bench/results/fixed-{timestamp}.json.
RUNS ?= 5
bench-fixed: install
	$(BIN)/python -m bench.fixed_costs --runs $(RUNS)

# The ledger's questions of every run (which batches are held) and of every upload (its
# stream's latest batch) after a year of uploads (4,448 batch records), on local disk and on S3
# over loopback, against reading every record. Writes bench/results/ledger-reads-{timestamp}.json.
bench-ledger: install
	$(BIN)/python -m bench.ledger_reads

# The merchants and products build of a registry of SCALE_MERCHANTS merchants (its current
# state generated once into bench/data/): whole, cut into KS USCC ranges in one process, and
# the ranges as Prefect tasks on a two-worker Dask cluster. Writes
# bench/results/scaling-{timestamp}.json; docs/scaling.md reads it.
SCALE_MERCHANTS ?= 800000
KS ?= 2,4,8
bench-scaling: install
	$(BIN)/python -m bench.scaling --merchants $(SCALE_MERCHANTS) --ks $(KS)

clean:
	rm -rf $(VENV) registry-data .pytest_cache
