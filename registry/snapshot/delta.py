"""The delta between two merchants tables: the rows of ``changes.parquet``.

One owner for both sides of it: the publisher writes each snapshot's ``changes.parquet`` with
:func:`merchant_changes` (previous snapshot -> this one, :mod:`registry.build.changes`), and a
reader that missed several snapshots catches up with the same function over the snapshot it
has and the one it opens (:meth:`registry.snapshot.reader.Snapshot.changes_since`). A pure
function of polars frames: it reads nothing.

The columns are those of the published contract ``contracts/changes.odcs.yaml``, which also
holds the table's version; the reader may not read the registry's config (docs/architecture.md
§1.3), so they are spelled here and tests/build/test_changes.py holds them against the contract.
"""

from __future__ import annotations

import polars as pl

CHANGE_SCHEMA: dict[str, pl.DataType] = {
    "uscc": pl.String(),
    "change": pl.String(),
    "fields_changed": pl.List(pl.String()),
    "grade_before": pl.String(),
    "grade_after": pl.String(),
    "score_before": pl.Float64(),
    "score_after": pl.Float64(),
    "trusted_before": pl.Boolean(),
    "trusted_after": pl.Boolean(),
}
CHANGE_COLUMNS = tuple(CHANGE_SCHEMA)
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

    Over snapshots further apart than one publication it is the net delta: a merchant added
    and removed in between is absent, one updated several times lists every column that
    differs between the two tables (a value changed and changed back is not a change).
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
