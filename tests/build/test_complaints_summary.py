"""The joint complaint analysis (``complaints_summary``) on tiny staged frames: counts, days to
resolve, amounts recovered, merchants named in more than one region, the window, months, the
latest row per complaint, and no personal column."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
from staged_rows import AS_OF, complaint, inputs_of, staged_frame, uscc

from registry.build.columns import STAGED_COLUMNS
from registry.build.complaints import (
    COMPLAINTS_SUMMARY_COLUMNS,
    COMPLAINTS_SUMMARY_SCHEMA,
    RESOLVED_STATUS,
    complaints_summary,
)
from registry.build.tables import registry_tables
from registry.config.contracts import load_contracts, natural_keys
from registry.config.published import load_published_contracts
from registry.config.regions import load_regions
from registry.config.score_model import load_score_model
from registry.config.settings import PROJECT_ROOT

MODEL = load_score_model(PROJECT_ROOT / "config", 1).model
DIVISIONS = load_regions(PROJECT_ROOT / "config").division_regions
CONTRACTS = load_contracts(PROJECT_ROOT / "schemas")
KEYS = natural_keys(CONTRACTS)
JUNE, JULY = date(2026, 6, 1), date(2026, 7, 1)
X, Y, Z = uscc("31", 1), uscc("32", 2), uscc("33", 3)


def summary(rows: list[dict] | pl.DataFrame, as_of: date = AS_OF) -> pl.DataFrame:
    """The published complaints summary of a build over these complaints."""
    tables = registry_tables(inputs_of(complaints=rows), as_of, MODEL, DIVISIONS, KEYS)
    return tables.complaints_summary.collect()


def by_key(frame: pl.DataFrame) -> dict[tuple[str, str, date], dict]:
    return {(r["region"], r["category"], r["month"]): r for r in frame.to_dicts()}


def resolved(complaint_id: str, days: int, amount: float | None = 0.0, **overrides) -> dict:
    received = overrides.pop("received_on", JUNE)
    return complaint(complaint_id=complaint_id, status="resolved", received_on=received,
                     resolved_on=received + timedelta(days), recovered_amount_cny=amount,
                     **overrides)


def test_received_resolved_and_unresolved_per_region_category_and_month():
    frame = summary([
        resolved("C1", 3),
        complaint(complaint_id="C2", status="unresolved", recovered_amount_cny=None),
        complaint(complaint_id="C3", status="in_progress", recovered_amount_cny=None),
        complaint(complaint_id="C4", category="price", status="unresolved"),
        complaint(region="JS", complaint_id="C1", status="in_progress"),
    ])
    rows = by_key(frame)
    assert sorted(rows) == [("JS", "quality", JUNE), ("SH", "price", JUNE),
                            ("SH", "quality", JUNE)]
    sh = rows[("SH", "quality", JUNE)]
    assert (sh["received"], sh["resolved"], sh["unresolved"]) == (3, 1, 2)
    assert (rows[("SH", "price", JUNE)]["received"], rows[("SH", "price", JUNE)]["unresolved"]
            ) == (1, 1)
    js = rows[("JS", "quality", JUNE)]
    assert (js["received"], js["resolved"], js["unresolved"]) == (1, 0, 1)
    assert js["median_days_to_resolve"] is None  # nothing resolved: no median


def test_median_days_to_resolve_counts_resolved_complaints_only():
    frame = summary([
        resolved("C1", 2), resolved("C2", 4), resolved("C3", 30),
        # Not resolved: its date is no resolution (and the contract only requires it when it is).
        complaint(complaint_id="C4", status="in_progress", resolved_on=JUNE + timedelta(1)),
        resolved("C5", 1, category="price"), resolved("C6", 4, category="price"),
    ])
    rows = by_key(frame)
    assert rows[("SH", "quality", JUNE)]["median_days_to_resolve"] == 4.0
    assert rows[("SH", "price", JUNE)]["median_days_to_resolve"] == 2.5  # mean of the middle


def test_the_median_counts_every_complaint_resolved_on_the_same_day():
    frame = summary([
        *(resolved(f"Q{i}", days) for i, days in enumerate([1, 3, 3, 3, 9, 10])),
        *(resolved(f"P{i}", days, category="price") for i, days in enumerate([7, 2, 5, 2])),
        *(resolved(f"S{i}", days, category="safety") for i, days in enumerate([8, 8, 1])),
    ])
    rows = by_key(frame)
    assert rows[("SH", "quality", JUNE)]["median_days_to_resolve"] == 3.0
    assert rows[("SH", "price", JUNE)]["median_days_to_resolve"] == 3.5
    assert rows[("SH", "safety", JUNE)]["median_days_to_resolve"] == 8.0


def test_recovered_amounts_are_summed_to_the_fen_and_zero_when_none_reported():
    frame = summary([
        resolved("C1", 3, 0.1), resolved("C2", 3, 0.2),
        # Whatever the status: a council may report an amount recovered so far.
        complaint(complaint_id="C3", category="safety", status="in_progress",
                  recovered_amount_cny=1200.5),
        resolved("C4", 3, 99.5, category="safety"),
        resolved("C5", 3, None, category="price"),
        complaint(complaint_id="C6", category="price", status="unresolved",
                  recovered_amount_cny=None),
    ])
    rows = by_key(frame)
    assert rows[("SH", "quality", JUNE)]["recovered_amount_cny"] == 0.3  # not 0.30000000000000004
    assert rows[("SH", "safety", JUNE)]["recovered_amount_cny"] == 1300.0
    assert rows[("SH", "price", JUNE)]["recovered_amount_cny"] == 0.0


def test_a_merchant_named_in_two_regions_counts_in_both_regions_rows():
    frame = summary([
        # X: SH and JS. Y: twice in SH only. Z: SH, and in ZJ a year before the window.
        complaint(complaint_id="C1", uscc=X),
        complaint(complaint_id="C2", uscc=Y),
        complaint(complaint_id="C3", uscc=Y, category="price", received_on=JULY),
        complaint(complaint_id="C4", uscc=Z),
        complaint(region="JS", complaint_id="C1", uscc=X, category="safety", received_on=JULY),
        complaint(region="ZJ", complaint_id="C1", uscc=Z, received_on=AS_OF - timedelta(400)),
    ])
    rows = by_key(frame)
    sh = rows[("SH", "quality", JUNE)]
    assert (sh["merchants_named"], sh["merchants_named_in_other_regions"]) == (3, 1)
    price = rows[("SH", "price", JULY)]
    assert (price["merchants_named"], price["merchants_named_in_other_regions"]) == (1, 0)
    js = rows[("JS", "safety", JULY)]
    assert (js["merchants_named"], js["merchants_named_in_other_regions"]) == (1, 1)
    assert ("ZJ", "quality", date(2025, 10, 1)) not in rows  # outside the window


def test_a_merchant_named_twice_in_one_row_is_one_merchant_named():
    frame = summary([complaint(complaint_id=f"C{i}", uscc=X) for i in range(3)])
    row = frame.row(0, named=True)
    assert (row["received"], row["merchants_named"], row["merchants_named_in_other_regions"]
            ) == (3, 1, 0)


def test_the_window_is_the_score_models_up_to_as_of():
    days = MODEL.window_days
    assert days == 365
    frame = summary([
        complaint(complaint_id="out", received_on=AS_OF - timedelta(days)),
        complaint(complaint_id="in", received_on=AS_OF - timedelta(days - 1)),
        complaint(complaint_id="today", received_on=AS_OF),
        complaint(complaint_id="after", received_on=AS_OF + timedelta(1)),
    ])
    assert [(r["month"], r["received"]) for r in frame.to_dicts()] == [
        (date(2025, 12, 1), 1), (date(2026, 11, 1), 1)]
    # The same complaints a year later: everything has aged out.
    assert summary([complaint(received_on=AS_OF)], as_of=AS_OF + timedelta(400)).height == 0


def test_months_are_the_first_day_of_the_month_received():
    frame = summary([
        complaint(complaint_id="C1", received_on=date(2026, 6, 30)),
        complaint(complaint_id="C2", received_on=date(2026, 7, 1)),
        complaint(complaint_id="C3", received_on=date(2026, 7, 31)),
    ])
    assert frame.select("month", "received").rows() == [(JUNE, 1), (JULY, 2)]


def test_a_complaint_restated_as_resolved_in_a_later_batch_counts_once_as_resolved():
    first = staged_frame("complaints", [
        complaint(complaint_id="C1", status="in_progress", recovered_amount_cny=None),
        complaint(complaint_id="C2", status="unresolved"),
    ], "B0001")
    later = staged_frame("complaints", [resolved("C1", 12, 880.0)], "B0002")
    frame = summary(pl.concat([later, first]))
    row = frame.row(0, named=True)
    assert (row["received"], row["resolved"], row["unresolved"]) == (2, 1, 1)
    assert (row["median_days_to_resolve"], row["recovered_amount_cny"]) == (12.0, 880.0)
    assert row["merchants_named"] == 1


def test_rows_are_sorted_and_typed_as_published_with_no_personal_column():
    frame = summary([
        complaint(region="ZJ", complaint_id="C1", category="other"),
        complaint(region="AH", complaint_id="C1", category="quality", received_on=JULY),
        complaint(region="AH", complaint_id="C2", category="quality"),
        complaint(region="AH", complaint_id="C3", category="after_sales"),
    ])
    assert frame.schema == pl.Schema(COMPLAINTS_SUMMARY_SCHEMA)
    assert tuple(frame.columns) == COMPLAINTS_SUMMARY_COLUMNS
    assert frame.select("region", "category", "month").rows() == [
        ("AH", "after_sales", JUNE), ("AH", "quality", JUNE), ("AH", "quality", JULY),
        ("ZJ", "other", JUNE)]
    personal = set(CONTRACTS["complaints"].pii_columns)
    assert personal == {"consumer_name", "consumer_phone"}
    assert not personal & set(frame.columns)
    # They never enter the build: the staged columns it reads leave them out.
    assert not personal & set(STAGED_COLUMNS["complaints"])


def test_the_columns_are_the_published_contracts():
    contract = load_published_contracts()["complaints_summary"]
    assert contract.column_names == COMPLAINTS_SUMMARY_COLUMNS
    assert {c.name: c.dtype for c in contract.columns} == COMPLAINTS_SUMMARY_SCHEMA


def test_no_complaints_give_an_empty_table_of_the_published_shape():
    frame = summary([])
    assert frame.height == 0 and frame.schema == pl.Schema(COMPLAINTS_SUMMARY_SCHEMA)


def test_unresolved_means_the_same_as_in_the_merchants_table():
    """Every status but ``resolved`` is unresolved here; the score model's unresolved statuses,
    which ``unresolved_12m`` counts, are exactly the contract's other statuses."""
    statuses = set(CONTRACTS["complaints"].by_name["status"].values or {})
    assert RESOLVED_STATUS in statuses
    assert set(MODEL.complaints.unresolved_statuses) == statuses - {RESOLVED_STATUS}


def test_the_function_takes_the_current_rows_as_given():
    current = inputs_of(complaints=[complaint(), complaint(region="JS")]).complaints
    frame = complaints_summary(current, AS_OF, MODEL).collect()
    assert frame.get_column("merchants_named_in_other_regions").to_list() == [1, 1]
