"""Gift products: panel scores per product and evaluation round, ranked within category, and
each merchant's gift score. Pure functions of LazyFrames."""

from __future__ import annotations

import polars as pl

from registry.build.columns import ORDER_COLUMN, PRODUCT_COLUMNS, PRODUCT_KEY
from registry.build.merchants import sorted_unique
from registry.build.scores import DECIMALS
from registry.config.score_model import ScoreModel


def gift_products(evaluations: pl.LazyFrame, model: ScoreModel) -> pl.LazyFrame:
    """One row per evaluated product and round (key: region, product_id, evaluation_round).

    Each dimension is a trimmed mean over evaluators: with at least ``trim_min_evaluators``
    scores, ``max(1, floor(n * trim_fraction))`` scores are dropped from each end. ``overall``
    is the mean of the dimensions. Dimensions and ``overall`` are unrounded: the merchant's
    gift score and quality points are computed from them, and they are rounded once, when
    published (:func:`registry_tables`).

    ``rank_in_category`` ranks products within their category and round across all regions
    (1 = best; ties share the better rank) by the *published* overall, rounded to
    :data:`~registry.build.scores.DECIMALS`: a consumer can check every rank against the overall
    it reads, two products showing the same overall share a rank, and neither a difference
    in a decimal nobody sees nor floating-point noise from the order of summation decides a
    place. Descriptive columns come from the latest evaluation row of the product.

    Every mean adds its scores in ascending order (:func:`_mean`), so the unrounded values are
    the same to the last bit however the evaluations are ordered, partitioned or split across
    threads, and a value at a rounding half-way point is published the same by every build.
    """
    rules = model.gift_products
    dimensions = rules.dimensions
    key = list(PRODUCT_KEY)
    group = [*key, "dimension"]
    scores = evaluations.unpivot(
        index=[*key, "evaluator_id"], on=dimensions, variable_name="dimension",
        value_name="points",
    ).drop_nulls("points")
    n = pl.len().over(group)
    trim = (
        pl.when(n >= rules.trim_min_evaluators)
        .then(pl.max_horizontal((n * rules.trim_fraction).floor().cast(pl.Int64), pl.lit(1)))
        .otherwise(0)
    )
    # Ordinal rank breaks ties arbitrarily, but tied scores are equal, so the scores kept are not.
    position = pl.col("points").rank("ordinal").over(group).cast(pl.Int64)
    trimmed = (
        scores.filter((position > trim) & (position <= n - trim))
        .group_by(key)
        .agg(_mean(pl.col("points").filter(pl.col("dimension") == d)).alias(d) for d in dimensions)
    )
    described = (
        evaluations.sort(ORDER_COLUMN, "_source_row")
        .group_by(key, maintain_order=True)
        .agg(
            pl.col("uscc", "product_name", "origin_city", "category").last(),
            pl.col("evaluator_id").n_unique().cast(pl.Int64).alias("evaluators"),
            sorted_unique(pl.col("_batch_id")).alias("source_batches"),
        )
    )
    return (
        described.join(trimmed, on=key, how="left")
        .with_columns(pl.mean_horizontal(dimensions).alias("overall"))
        .with_columns(
            pl.col("overall")
            .round(DECIMALS)
            .rank("min", descending=True)
            .over("category", "evaluation_round")
            .cast(pl.Int64)
            .alias("rank_in_category")
        )
        .select(PRODUCT_COLUMNS)
        .sort("evaluation_round", "category", "rank_in_category", "region", "product_id")
    )


def gift_scores(products: pl.LazyFrame) -> pl.LazyFrame:
    """Per USCC, the mean overall score of its evaluated products (0-10), unrounded like the
    ``overall`` of :func:`gift_products`, and like it the same to the last bit in any row
    order."""
    return products.group_by("uscc").agg(
        _mean(pl.col("overall")).alias("gift_score"),
        sorted_unique(pl.col("source_batches").explode()).alias("gift_batches"),
    )


def _mean(values: pl.Expr) -> pl.Expr:
    """The mean of ``values`` (per group in an aggregation), added in ascending order.

    A floating-point sum depends on the order of its terms, and the order in which a group's
    rows reach an aggregation depends on the input's row order and on polars' threads and
    streaming morsels: without a fixed order, the same scores could give means differing in
    the last bit from one build to the next. Sorted, equal scores give the same sum. The
    sorted values are gathered into a list first because the optimizer drops a sort that
    feeds an aggregation directly (``sort().mean()`` runs as ``mean()``); like ``mean()``,
    the list's mean skips nulls and is null when there is nothing to average."""
    return values.sort().implode().list.mean()
