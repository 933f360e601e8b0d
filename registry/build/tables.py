"""The registry's tables from the staged rows in effect: scored merchants, gift products and the
joint complaint analysis, sorted, in their fixed column order. Pure: depends only on the
inputs, ``as_of``, the score model, the natural keys and the division-code map."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import polars as pl

from registry.build.columns import (
    LISTING_DATE_COLUMNS,
    MERCHANT_COLUMNS,
    STRING_LIST,
    StagedInputs,
)
from registry.build.complaints import complaints_summary
from registry.build.merchants import (
    complaint_counts,
    inspection_counts,
    latest_rows,
    merchants_merged,
)
from registry.build.products import gift_products, gift_scores
from registry.build.scores import DECIMALS, scores_explained
from registry.config.score_model import ScoreModel


@dataclass(frozen=True)
class RegistryTables:
    """``merchants`` lacks only the listing dates, which need the previous snapshot."""

    merchants: pl.LazyFrame
    products: pl.LazyFrame
    complaints_summary: pl.LazyFrame


def _current_rows(inputs: StagedInputs, dataset: str,
                  natural_keys: Mapping[str, Sequence[str]]) -> pl.LazyFrame:
    """The current row of every natural key of ``dataset``: the inputs as they are when they
    hold nothing else (``inputs.current``)."""
    rows: pl.LazyFrame = getattr(inputs, dataset)
    return rows if inputs.current else latest_rows(rows, natural_keys[dataset])


def registry_products(inputs: StagedInputs, model: ScoreModel,
                      natural_keys: Mapping[str, Sequence[str]]) -> pl.LazyFrame:
    """The gift products of ``inputs``' evaluations, unrounded (:func:`gift_products`)."""
    return gift_products(_current_rows(inputs, "gift_evaluations", natural_keys), model)


def registry_tables(
    inputs: StagedInputs,
    as_of: date,
    model: ScoreModel,
    division_regions: Mapping[str, str],
    natural_keys: Mapping[str, Sequence[str]],
    *,
    products: pl.LazyFrame | None = None,
) -> RegistryTables:
    """The scored merchants table (every published column but the listing dates), the gift
    product table and the complaints summary, sorted, in their fixed column order. Depends
    only on ``inputs``, ``as_of`` and the model.

    When ``inputs`` hold the rows of some merchants only (one USCC range), ``products`` are
    the gift products of the whole registry (:func:`registry_products`): the merchants' gift
    scores and the products table come from them.

    Everything is computed from unrounded inputs, and every published score is rounded once,
    here: the products' dimensions and ``overall``, the merchants' ``gift_score``, and the
    score columns (in :func:`~registry.build.scores.scores_explained`)."""
    filings = _current_rows(inputs, "merchants", natural_keys)
    complaints = _current_rows(inputs, "complaints", natural_keys)
    inspections = _current_rows(inputs, "inspections", natural_keys)
    if products is None:
        products = registry_products(inputs, model, natural_keys)
    no_batches = pl.lit([], dtype=STRING_LIST)
    facts = (
        merchants_merged(filings, as_of, division_regions)
        .join(complaint_counts(complaints, as_of, model), on="uscc", how="left")
        .join(inspection_counts(inspections, as_of, model), on="uscc", how="left")
        .join(gift_scores(products), on="uscc", how="left")
        .with_columns(
            pl.col(
                "complaints_12m", "unresolved_12m", "inspections_12m",
                "failed_inspections_12m", "serious_failures_12m",
            ).fill_null(0),
            pl.concat_list(
                pl.col(c).fill_null(no_batches)
                for c in ("filing_batches", "complaint_batches", "inspection_batches",
                          "gift_batches")
            )
            .list.unique()
            .list.sort()
            .alias("source_batches"),
        )
    )
    merchants = (
        scores_explained(facts, model)
        .with_columns(pl.col("gift_score").round(DECIMALS))
        .select(c for c in MERCHANT_COLUMNS if c not in LISTING_DATE_COLUMNS)
        .sort("uscc")
    )
    published_products = products.with_columns(
        pl.col(*model.gift_products.dimensions, "overall").round(DECIMALS)
    )
    return RegistryTables(
        merchants=merchants,
        products=published_products,
        complaints_summary=complaints_summary(complaints, as_of, model),
    )
