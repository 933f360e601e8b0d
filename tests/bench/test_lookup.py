"""``bench.lookup``: the synthetic table has the published schema and valid, sorted USCCs, and
a small run on moto measures every way and writes its results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from bench.lookup_data import synthetic_merchants
from registry.config.published import load_published_contracts
from registry.ingest.uscc import uscc_is_valid

ROOT = Path(__file__).resolve().parents[2]


def test_the_synthetic_table_is_a_published_merchants_table():
    frame = synthetic_merchants(5_000, seed=1)
    assert dict(frame.schema) == load_published_contracts()["merchants"].schema
    codes = frame.get_column("uscc")
    assert codes.is_sorted() and codes.is_unique().all()
    assert frame.select(uscc_is_valid(pl.col("uscc")).all()).item()
    assert set(frame.get_column("verdict")) == {"trusted", "listed", "disqualified"}
    disqualified = frame.filter(pl.col("verdict") == "disqualified")
    assert disqualified.get_column("grade").is_null().all()
    assert (disqualified.get_column("disqualifications").list.len() > 0).all()


@pytest.mark.slow
def test_a_small_run_measures_every_way(tmp_path):
    out = tmp_path / "lookup.json"
    subprocess.run(
        [sys.executable, "-m", "bench.lookup", "--rows", "3000", "--lookups", "6",
         "--server", "moto", "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    result = json.loads(out.read_text())
    assert result["rows"] == 3000 and result["server"] == "moto"
    assert set(result["lookups_ms"]) == {"reader", "duckdb", "polars_full_scan",
                                         "duckdb_full_scan"}
    assert result["lookups_ms"]["reader"]["n"] == 6
    assert result["file"]["row_groups"] == 1
    assert set(result["speedup_vs_full_scan_p50"]) == {"reader", "duckdb"}
