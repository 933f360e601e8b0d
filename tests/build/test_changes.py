"""The delta between two merchants tables (registry.snapshot.delta, which the build re-exports),
and listing dates carried forward."""

from __future__ import annotations

from datetime import date

import polars as pl

from registry.build import changes as build_changes
from registry.build.changes import merchants_dated
from registry.config.published import load_published_contracts
from registry.snapshot import delta
from registry.snapshot.delta import CHANGE_COLUMNS, CHANGE_SCHEMA, merchant_changes

DAY1, DAY2 = date(2026, 11, 1), date(2026, 12, 1)


def table(rows: list[dict]) -> pl.DataFrame:
    schema = {"uscc": pl.String, "traceable": pl.Boolean, "regions": pl.List(pl.String),
              "score": pl.Float64, "grade": pl.String, "trusted": pl.Boolean,
              "source_batches": pl.List(pl.String)}
    base = {"traceable": True, "regions": ["SH"], "score": 90.0, "grade": "A", "trusted": True,
            "source_batches": ["B1"]}
    return pl.DataFrame([{**base, **r} for r in rows], schema=schema)


def test_added_removed_and_updated_with_the_fields_that_changed():
    before = table([{"uscc": "A"}, {"uscc": "B"}, {"uscc": "C"}])
    after = table([
        {"uscc": "A", "source_batches": ["B2"]},  # new lineage, same facts: not a change
        {"uscc": "B", "traceable": False, "regions": ["AH", "SH"], "score": 80.0,
         "grade": "B"},
        {"uscc": "D"},
    ])
    changes = merchant_changes(before, after)
    assert tuple(changes.columns) == CHANGE_COLUMNS
    rows = {r["uscc"]: r for r in changes.to_dicts()}
    assert set(rows) == {"B", "C", "D"}
    assert rows["B"]["change"] == "updated"
    assert rows["B"]["fields_changed"] == ["traceable", "regions", "score", "grade"]
    assert (rows["B"]["score_before"], rows["B"]["score_after"]) == (90.0, 80.0)
    assert (rows["B"]["grade_before"], rows["B"]["grade_after"]) == ("A", "B")
    assert rows["C"]["change"] == "removed" and rows["C"]["trusted_after"] is None
    assert rows["D"]["change"] == "added" and rows["D"]["grade_before"] is None


def test_without_a_previous_snapshot_everything_is_added():
    changes = merchant_changes(None, table([{"uscc": "A"}, {"uscc": "B"}]))
    assert changes.get_column("change").to_list() == ["added", "added"]


def test_listing_dates_carry_forward_and_move_on_change():
    first = table([{"uscc": "A"}, {"uscc": "B"}])
    dated1 = merchants_dated(first, None, merchant_changes(None, first), DAY1)
    second = table([{"uscc": "A"}, {"uscc": "B", "score": 70.0}, {"uscc": "C"}])
    dated2 = merchants_dated(second, dated1, merchant_changes(dated1, second), DAY2)
    got = {r["uscc"]: (r["first_listed_on"], r["last_changed_on"]) for r in dated2.to_dicts()}
    assert got == {"A": (DAY1, DAY1), "B": (DAY1, DAY2), "C": (DAY2, DAY2)}
    assert dated2.columns[-3:] == ["first_listed_on", "last_changed_on", "source_batches"]
    assert dated2.get_column("uscc").to_list() == ["A", "B", "C"]  # current's order, kept


def test_the_delta_has_the_columns_of_its_published_contract():
    """The reader may not read config, so delta.py spells the contract's columns: held here."""
    contract = load_published_contracts()["changes"]
    assert contract.schema == CHANGE_SCHEMA
    assert contract.column_names == CHANGE_COLUMNS
    # One owner: the build's names are the reader's.
    assert build_changes.merchant_changes is delta.merchant_changes
    assert build_changes.CHANGE_SCHEMA is delta.CHANGE_SCHEMA
