"""The listing dates that carry forward from one snapshot to the next, and the delta between two
snapshots (``changes.parquet``). Pure functions of polars frames.

The delta itself, :func:`merchant_changes` and the changes table's columns, belongs to
:mod:`registry.snapshot.delta`, which a reader catching up over several snapshots uses too; it
is re-exported here for the build's callers.
"""

from __future__ import annotations

from datetime import date

import polars as pl

from registry.snapshot.delta import (
    CHANGE_COLUMNS,
    CHANGE_SCHEMA,
    merchant_changes,
)

__all__ = [
    "CHANGE_COLUMNS",
    "CHANGE_SCHEMA",
    "merchant_changes",
    "merchants_dated",
]


def merchants_dated(
    current: pl.DataFrame,
    previous: pl.DataFrame | None,
    changes: pl.DataFrame,
    as_of: date,
) -> pl.DataFrame:
    """``current`` with ``first_listed_on`` (kept from ``previous``, else ``as_of``) and
    ``last_changed_on`` (``as_of`` when added or updated in ``changes``, else kept), inserted
    before ``source_batches``, rows in ``current``'s order."""
    changed = changes.filter(pl.col("change") != "removed").select(
        "uscc", pl.lit(True).alias("_changed")
    )
    if previous is None:
        carried = pl.DataFrame(
            schema={"uscc": pl.String, "first_listed_on": pl.Date, "last_changed_on": pl.Date}
        )
    else:
        carried = previous.select("uscc", "first_listed_on", "last_changed_on")
    # In ``current``'s order (sorted by USCC): point lookups prune row groups on that order.
    dated = (
        current.join(carried, on="uscc", how="left", maintain_order="left")
        .join(changed, on="uscc", how="left", maintain_order="left")
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
