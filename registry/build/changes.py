"""The delta between two registry snapshots (``changes.parquet``) and the listing dates that
carry forward from one snapshot to the next. Pure functions of polars frames."""

from __future__ import annotations

from datetime import date

import polars as pl

CHANGES_CONTRACT_VERSION = 1
CHANGE_COLUMNS = (
    "uscc",
    "change",
    "fields_changed",
    "grade_before",
    "grade_after",
    "score_before",
    "score_after",
    "trusted_before",
    "trusted_after",
)
CHANGE_SCHEMA = {
    "uscc": pl.String,
    "change": pl.String,
    "fields_changed": pl.List(pl.String),
    "grade_before": pl.String,
    "grade_after": pl.String,
    "score_before": pl.Float64,
    "score_after": pl.Float64,
    "trusted_before": pl.Boolean,
    "trusted_after": pl.Boolean,
}
# Not compared: the key, the dates derived from this comparison, and lineage (a new batch that
# restates the same facts is not a change a consumer would notice).
_NOT_COMPARED = frozenset({"uscc", "first_listed_on", "last_changed_on", "source_batches"})
_BEFORE = "__before"


def merchant_changes(previous: pl.DataFrame | None, current: pl.DataFrame) -> pl.DataFrame:
    """One row per USCC that was ``added``, ``removed`` or ``updated`` from ``previous`` to
    ``current`` (two merchants tables), sorted by USCC.

    ``fields_changed`` lists the published columns whose values differ (in ``current``'s column
    order; empty for added and removed merchants). Columns present in only one of the two tables
    are not compared. With no previous snapshot, every merchant is added.
    """
    if previous is None:
        previous = current.clear()
    compared = [
        c for c in current.columns if c in previous.columns and c not in _NOT_COMPARED
    ]
    before = previous.select(
        "uscc", *[pl.col(c).alias(c + _BEFORE) for c in compared], pl.lit(True).alias("_was")
    )
    after = current.select("uscc", *compared, pl.lit(True).alias("_is"))
    joined = after.join(before, on="uscc", how="full", coalesce=True)
    differing = pl.concat_list(
        pl.when(pl.col(c).ne_missing(pl.col(c + _BEFORE))).then(pl.lit(c)) for c in compared
    ).list.drop_nulls()
    was, is_ = pl.col("_was").fill_null(False), pl.col("_is").fill_null(False)
    return (
        joined.with_columns(fields_changed=pl.when(was & is_).then(differing).otherwise(
            pl.lit([], dtype=pl.List(pl.String))
        ))
        .with_columns(
            change=pl.when(~was)
            .then(pl.lit("added"))
            .when(~is_)
            .then(pl.lit("removed"))
            .when(pl.col("fields_changed").list.len() > 0)
            .then(pl.lit("updated"))
        )
        .filter(pl.col("change").is_not_null())
        .select(
            "uscc",
            "change",
            "fields_changed",
            pl.col("grade" + _BEFORE).alias("grade_before"),
            pl.col("grade").alias("grade_after"),
            pl.col("score" + _BEFORE).alias("score_before"),
            pl.col("score").alias("score_after"),
            pl.col("trusted" + _BEFORE).alias("trusted_before"),
            pl.col("trusted").alias("trusted_after"),
        )
        .cast(CHANGE_SCHEMA)
        .sort("uscc")
    )


def merchants_dated(
    current: pl.DataFrame,
    previous: pl.DataFrame | None,
    changes: pl.DataFrame,
    as_of: date,
) -> pl.DataFrame:
    """``current`` with ``first_listed_on`` (kept from ``previous``, else ``as_of``) and
    ``last_changed_on`` (``as_of`` when added or updated in ``changes``, else kept), inserted
    before ``source_batches``."""
    changed = changes.filter(pl.col("change") != "removed").select(
        "uscc", pl.lit(True).alias("_changed")
    )
    if previous is None:
        carried = pl.DataFrame(
            schema={"uscc": pl.String, "first_listed_on": pl.Date, "last_changed_on": pl.Date}
        )
    else:
        carried = previous.select("uscc", "first_listed_on", "last_changed_on")
    dated = (
        current.join(carried, on="uscc", how="left")
        .join(changed, on="uscc", how="left")
        .with_columns(
            pl.col("first_listed_on").fill_null(as_of),
            pl.when(pl.col("_changed"))
            .then(pl.lit(as_of))
            .otherwise(pl.col("last_changed_on"))
            .fill_null(as_of)
            .alias("last_changed_on"),
        )
    )
    columns = [c for c in current.columns if c != "source_batches"]
    return dated.select(*columns, "first_listed_on", "last_changed_on", "source_batches")
