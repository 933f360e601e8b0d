"""The joint complaint analysis (``complaints_summary.parquet``, docs/architecture.md §10.6):
complaints received by the four councils, per region, category and month, with how many were
resolved, how fast, what was recovered, and how many of the merchants named were also named in
another region. A pure function of a LazyFrame; no personal column is read."""

from __future__ import annotations

from datetime import date

import polars as pl

from registry.build.merchants import in_window
from registry.config.published import load_published_contracts
from registry.config.score_model import ScoreModel

# The one complaint status that closes a complaint (schemas/complaints.yaml, ``status``); every
# other status is unresolved, as the score model's ``unresolved_statuses`` say.
RESOLVED_STATUS = "resolved"
# The published columns, their order and types, and the key are the contract's
# (contracts/complaints_summary.odcs.yaml), as for the other tables (registry.build.columns).
_CONTRACT = load_published_contracts()["complaints_summary"]
COMPLAINTS_SUMMARY_KEY = _CONTRACT.key
COMPLAINTS_SUMMARY_SCHEMA: dict[str, pl.DataType] = _CONTRACT.schema
COMPLAINTS_SUMMARY_COLUMNS = tuple(COMPLAINTS_SUMMARY_SCHEMA)
# Amounts are yuan to the fen: the sum is rounded to it, so that no floating-point noise from
# the order of summation reaches the published file.
AMOUNT_DECIMALS = 2


def _day_at(position: pl.Expr) -> pl.Expr:
    """In a histogram of days (``_days``, ``_n`` complaints, ``_before`` complaints on earlier
    days), the day of the ``position``-th complaint, from 1."""
    holds = (pl.col("_before") < position) & (pl.col("_before") + pl.col("_n") >= position)
    return pl.col("_days").filter(holds).first()


def _median_days_to_resolve(resolved: pl.LazyFrame, key: list[str]) -> pl.LazyFrame:
    """Per ``key``, the median of ``resolved_on - received_on`` in whole days (a float: the
    mean of the two middle values of an even count), null when no day is known.

    Read off each row's histogram of days, which a streaming aggregation builds in a few
    thousand rows, where a median per row holds every complaint's days at once; whole days
    make it exact."""
    days = (pl.col("resolved_on") - pl.col("received_on")).dt.total_days().alias("_days")
    counts = (
        resolved.select(*key, days).drop_nulls("_days")
        .group_by(*key, "_days").agg(pl.len().alias("_n"))
        .sort(*key, "_days")
        .with_columns(
            (pl.col("_n").cum_sum().over(key) - pl.col("_n")).alias("_before"),
            pl.col("_n").sum().over(key).alias("_total"),
        )
    )
    lower, upper = (pl.col("_total") + 1) // 2, pl.col("_total") // 2 + 1
    return counts.group_by(key).agg(
        ((_day_at(lower) + _day_at(upper)) / 2).alias("median_days_to_resolve")
    )


def complaints_summary(complaints: pl.LazyFrame, as_of: date, model: ScoreModel
                       ) -> pl.LazyFrame:
    """One row per region, category and month (the first day of the month received) of the
    complaints received in the score model's window ``(as_of - window_days, as_of]``, sorted
    by region, category and month.

    ``complaints`` holds the current row of every complaint (see
    :func:`~registry.build.merchants.latest_rows`): a complaint restated as resolved in a later
    batch counts once, as resolved. ``resolved`` counts status ``resolved`` and ``unresolved``
    every other status. ``median_days_to_resolve`` is the median of ``resolved_on -
    received_on`` over the resolved complaints (null when none is). ``recovered_amount_cny``
    sums the amounts reported (0 when none is). ``merchants_named`` counts the distinct USCCs
    of the row's complaints, and ``merchants_named_in_other_regions`` those of them named in
    complaints received by more than one region in the window."""
    resolved = pl.col("status") == RESOLVED_STATUS
    key = list(COMPLAINTS_SUMMARY_KEY)
    received = (
        complaints.filter(in_window("received_on", as_of, model.window_days))
        .select("region", "category", "uscc", "received_on", "status", "resolved_on",
                "recovered_amount_cny")
        .with_columns(pl.col("received_on").dt.truncate("1mo").alias("month"))
    )
    counted = received.group_by(key).agg(
        pl.len().alias("received"),
        resolved.sum().alias("resolved"),
        (~resolved).sum().alias("unresolved"),
        pl.col("recovered_amount_cny").sum().round(AMOUNT_DECIMALS).alias("recovered_amount_cny"),
    )
    # Distinct merchants are counted from distinct (row, USCC) pairs, and the merchants named
    # in several regions from distinct (USCC, region) pairs: each a streaming aggregation,
    # where a distinct count per row would hold every USCC of every row at once.
    in_other_regions = (
        received.select("uscc", "region").unique()
        .group_by("uscc").agg((pl.len() > 1).alias("_in_other_regions"))
    )
    named = (
        received.select(*key, "uscc").unique()
        .join(in_other_regions, on="uscc", how="left")
        .group_by(key)
        .agg(
            pl.len().alias("merchants_named"),
            pl.col("_in_other_regions").fill_null(False).sum()
            .alias("merchants_named_in_other_regions"),
        )
    )
    return (
        counted.join(_median_days_to_resolve(received.filter(resolved), key), on=key, how="left")
        .join(named, on=key, how="left")
        .select(COMPLAINTS_SUMMARY_COLUMNS)
        .cast(COMPLAINTS_SUMMARY_SCHEMA)
        .sort(COMPLAINTS_SUMMARY_KEY)
    )
