"""Merchants: the latest row per natural key, valid filings merged per USCC, and the
complaint and inspection counts in their 12-month windows. Pure functions of LazyFrames."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta

import polars as pl

from registry.build.columns import ACTIVE_STATUS, COMMITMENT_FLAGS, ORDER_COLUMN
from registry.config.score_model import ScoreModel

# A row's place in ledger order as one integer: its batch's rank, then its row in the upload.
# The row number takes the low 32 bits: no upload comes near 2**32 rows.
_ROW_RANK = "_row_rank"
_ROW_BITS = 32


def latest_rows(staged: pl.LazyFrame, key: Sequence[str]) -> pl.LazyFrame:
    """One row per natural ``key``: the one from the latest batch in ledger order (then the
    latest source row). The rows come in no particular order.

    The latest place per key is found by a grouped maximum and its row kept by a semi-join:
    both stream, holding one entry per key, where sorting every row first would hold them
    all."""
    rank = (pl.col(ORDER_COLUMN) * (1 << _ROW_BITS) + pl.col("_source_row")).alias(_ROW_RANK)
    ranked = staged.with_columns(rank)
    latest = ranked.group_by(list(key)).agg(pl.col(_ROW_RANK).max())
    return ranked.join(latest, on=[*key, _ROW_RANK], how="semi", nulls_equal=True).drop(
        _ROW_RANK)


def in_window(column: str, as_of: date, days: int) -> pl.Expr:
    """``column`` falls in the trailing window (as_of - days, as_of]."""
    return (pl.col(column) > as_of - timedelta(days=days)) & (pl.col(column) <= as_of)


def filings_valid(filings: pl.LazyFrame, as_of: date) -> pl.LazyFrame:
    """The valid filings on ``as_of``: status ``active`` and valid_from <= as_of <= valid_until
    (open if null). A revoked or suspended filing is never valid, whatever its dates."""
    return filings.filter(
        (pl.col("status") == ACTIVE_STATUS)
        & (pl.col("valid_from") <= as_of)
        & (pl.col("valid_until").is_null() | (pl.col("valid_until") >= as_of))
    )


def registered_region(division_regions: Mapping[str, str]) -> pl.Expr:
    """Region of the USCC's registration authority (positions 3-4), null outside the alliance."""
    return (
        pl.col("uscc")
        .str.slice(2, 2)
        .replace_strict(dict(division_regions), default=None, return_dtype=pl.String)
        .alias("registered_region")
    )


def sorted_unique(expr: pl.Expr) -> pl.Expr:
    return expr.drop_nulls().unique().sort()


def merchants_merged(
    filings: pl.LazyFrame, as_of: date, division_regions: Mapping[str, str]
) -> pl.LazyFrame:
    """One row per USCC with at least one valid filing on ``as_of`` (:func:`filings_valid`),
    merged across regions.

    ``filings`` holds the current row of every filing (see :func:`latest_rows`). Only valid
    filings feed the name, regions, programs, categories, origin countries, commitment flags
    and ``valid_until``. The name is the one filed in the merchant's registered region if any,
    else the latest filed; every original spelling is kept in ``name_variants``;
    ``name_conflict`` flags filings whose matching keys (Traditional->Simplified, NFKC,
    case-folded) differ. A commitment holds only if every valid filing makes it.
    ``statuses`` gathers the status of every current filing, valid or not, so that a revoked
    or suspended filing in any region disqualifies a merchant listed elsewhere: a status is
    the council's latest word on a filing, and a suspension is lifted by filing again as
    active. A merchant with no valid filing gets no row, whatever its other filings say.
    """
    valid = filings_valid(filings, as_of).with_columns(registered_region(division_regions))
    statuses = filings.group_by("uscc").agg(
        sorted_unique(pl.col("status")).alias("statuses"),
        pl.col("_batch_id").unique().alias("filing_batches"),
    )
    # The filing whose name is published: filed in the registered region, then the latest,
    # then by region and filing id (the natural key: no two filings tie).
    preferred = [pl.col("region") == pl.col("registered_region"), ORDER_COLUMN, "region",
                 "filing_id"]
    return (
        valid.group_by("uscc")
        .agg(
            pl.col("merchant_name").sort_by(preferred, descending=[True, True, False, False])
            .first().alias("name"),
            sorted_unique(pl.col("merchant_name")).alias("name_variants"),
            (pl.col("merchant_name_key").n_unique() > 1).alias("name_conflict"),
            sorted_unique(pl.col("region")).alias("regions"),
            pl.col("registered_region").first(),
            sorted_unique(pl.col("program")).alias("programs"),
            sorted_unique(pl.col("categories").explode()).alias("categories"),
            sorted_unique(pl.col("origin_countries").explode()).alias("origin_countries"),
            *[pl.col(flag).fill_null(False).all().alias(flag) for flag in COMMITMENT_FLAGS],
            pl.col("valid_until").max(),
        )
        .join(statuses, on="uscc", how="left")
    )


def complaint_counts(complaints: pl.LazyFrame, as_of: date, model: ScoreModel) -> pl.LazyFrame:
    """Per USCC, complaints received in the window and how many are not yet resolved."""
    unresolved = pl.col("status").is_in(model.complaints.unresolved_statuses)
    return (
        complaints.filter(in_window("received_on", as_of, model.window_days))
        .group_by("uscc")
        .agg(
            pl.len().cast(pl.Int64).alias("complaints_12m"),
            unresolved.sum().cast(pl.Int64).alias("unresolved_12m"),
            pl.col("_batch_id").unique().alias("complaint_batches"),
        )
    )


def inspection_counts(
    inspections: pl.LazyFrame, as_of: date, model: ScoreModel
) -> pl.LazyFrame:
    """Per USCC, inspections in the window, failures, and failures of serious severity."""
    failed = pl.col("result") == "fail"
    serious = failed & (pl.col("severity") == model.disqualifiers.serious_severity)
    return (
        inspections.filter(in_window("tested_on", as_of, model.window_days))
        .group_by("uscc")
        .agg(
            pl.len().cast(pl.Int64).alias("inspections_12m"),
            failed.sum().cast(pl.Int64).alias("failed_inspections_12m"),
            serious.fill_null(False).sum().cast(pl.Int64).alias("serious_failures_12m"),
            pl.col("_batch_id").unique().alias("inspection_batches"),
        )
    )
