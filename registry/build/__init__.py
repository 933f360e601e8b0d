"""Registry build: from staged batches to the merchants and gift-product tables.

Which staged rows count is the ledger's rule (:func:`registry.ledger.in_effect`): publishable
batches only; per region and dataset, the latest ``replace`` batch (the council's complete
list) and the batches after it, plus the previous rows of filings the replace batch
quarantined. Per natural key, the row of the latest batch in ledger order (when its upload
landed, never when it was ingested) wins: :data:`ORDER_COLUMN` carries that order.

The transformations are pure functions of LazyFrames. The two functions at the bottom that read
batch records and staged Parquet are the only I/O in this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl

from registry.build.scores import DECIMALS, ScoreModel, scores_explained
from registry.ledger import BatchRecord, InEffect
from registry.storage import Storage
from registry.storage.layout import DATASETS, quarantine_prefix, staged_prefix

# The published merchants table, contract v1, in its fixed column order.
MERCHANTS_CONTRACT_VERSION = 1
PRODUCTS_CONTRACT_VERSION = 1
COMMITMENT_FLAGS = (
    "chinese_label",
    "traceable",
    "no_reason_return_7d",
    "offline_no_reason_return",
    "advance_compensation",
)
MERCHANT_COLUMNS = (
    "uscc",
    "name",
    "name_variants",
    "name_conflict",
    "regions",
    "registered_region",
    "programs",
    "categories",
    "origin_countries",
    *COMMITMENT_FLAGS,
    "valid_until",
    "complaints_12m",
    "unresolved_12m",
    "inspections_12m",
    "failed_inspections_12m",
    "gift_score",
    "score_compliance",
    "score_complaints",
    "score_quality",
    "score",
    "grade",
    "trusted",
    "disqualifications",
    "first_listed_on",
    "last_changed_on",
    "source_batches",
)
# Carried forward from the previous snapshot (registry.build.changes), not built from staged rows.
LISTING_DATE_COLUMNS = ("first_listed_on", "last_changed_on")
GIFT_DIMENSIONS = ("quality", "culture", "packaging", "value")
PRODUCT_KEY = ("region", "product_id", "evaluation_round")
PRODUCT_COLUMNS = (
    *PRODUCT_KEY,
    "uscc",
    "product_name",
    "origin_city",
    "category",
    "evaluators",
    *GIFT_DIMENSIONS,
    "overall",
    "rank_in_category",
    "source_batches",
)

_LINEAGE = {"_batch_id": pl.String, "_source_row": pl.Int64}
# The one filing status that can make a filing valid (schemas/merchants.yaml, ``status``).
ACTIVE_STATUS = "active"
# Added to every staged row when it is read: the rank of its batch in ledger order.
ORDER_COLUMN = "_batch_order"
_STRINGS = pl.List(pl.String)
# The staged columns the build reads, per dataset (the ingest contract, DESIGN.md §4). Nothing
# else is read, so PII columns never even enter the build.
STAGED_COLUMNS: dict[str, dict[str, pl.DataType]] = {
    "merchants": {
        "region": pl.String,
        "filing_id": pl.String,
        "uscc": pl.String,
        "merchant_name": pl.String,
        "merchant_name_key": pl.String,
        "program": pl.String,
        "categories": _STRINGS,
        "origin_countries": _STRINGS,
        **dict.fromkeys(COMMITMENT_FLAGS, pl.Boolean),
        "valid_from": pl.Date,
        "valid_until": pl.Date,
        "status": pl.String,
        **_LINEAGE,
    },
    "complaints": {
        "region": pl.String,
        "complaint_id": pl.String,
        "uscc": pl.String,
        "received_on": pl.Date,
        "status": pl.String,
        **_LINEAGE,
    },
    "inspections": {
        "region": pl.String,
        "inspection_id": pl.String,
        "uscc": pl.String,
        "tested_on": pl.Date,
        "result": pl.String,
        "severity": pl.String,
        **_LINEAGE,
    },
    "gift_evaluations": {
        "region": pl.String,
        "product_id": pl.String,
        "uscc": pl.String,
        "product_name": pl.String,
        "origin_city": pl.String,
        "category": pl.String,
        "evaluation_round": pl.String,
        "evaluator_id": pl.String,
        **dict.fromkeys(GIFT_DIMENSIONS, pl.Float64),
        **_LINEAGE,
    },
}
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "merchants": ("region", "filing_id"),
    "complaints": ("region", "complaint_id"),
    "inspections": ("region", "inspection_id"),
    "gift_evaluations": ("region", "product_id", "evaluation_round", "evaluator_id"),
}


class StagedSchemaError(ValueError):
    """A staged batch does not have the columns or types of the ingest contract."""


@dataclass(frozen=True)
class StagedInputs:
    """Staged rows of every dataset, restricted to the batches in effect."""

    merchants: pl.LazyFrame
    complaints: pl.LazyFrame
    inspections: pl.LazyFrame
    gift_evaluations: pl.LazyFrame


@dataclass(frozen=True)
class RegistryTables:
    """``merchants`` lacks only the listing dates, which need the previous snapshot."""

    merchants: pl.LazyFrame
    products: pl.LazyFrame


# ---------------------------------------------------------------------------------------------
# Pure transformations


def latest_rows(staged: pl.LazyFrame, key: Sequence[str]) -> pl.LazyFrame:
    """One row per natural ``key``: the one from the latest batch in ledger order (then the
    latest source row)."""
    return staged.sort(ORDER_COLUMN, "_source_row").unique(
        subset=list(key), keep="last", maintain_order=True
    )


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


def _sorted_unique(expr: pl.Expr) -> pl.Expr:
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
        _sorted_unique(pl.col("status")).alias("statuses"),
        _sorted_unique(pl.col("_batch_id")).alias("filing_batches"),
    )
    return (
        valid.sort(
            ["uscc", pl.col("region") == pl.col("registered_region"), ORDER_COLUMN, "region",
             "filing_id"],
            descending=[False, True, True, False, False],
        )
        .group_by("uscc", maintain_order=True)
        .agg(
            pl.col("merchant_name").first().alias("name"),
            _sorted_unique(pl.col("merchant_name")).alias("name_variants"),
            (pl.col("merchant_name_key").n_unique() > 1).alias("name_conflict"),
            _sorted_unique(pl.col("region")).alias("regions"),
            pl.col("registered_region").first(),
            _sorted_unique(pl.col("program")).alias("programs"),
            _sorted_unique(pl.col("categories").explode()).alias("categories"),
            _sorted_unique(pl.col("origin_countries").explode()).alias("origin_countries"),
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
            _sorted_unique(pl.col("_batch_id")).alias("complaint_batches"),
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
            _sorted_unique(pl.col("_batch_id")).alias("inspection_batches"),
        )
    )


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
    # Ordinal rank breaks ties arbitrarily, but tied scores are equal, so the mean is not.
    position = pl.col("points").rank("ordinal").over(group).cast(pl.Int64)
    trimmed = (
        scores.sort([*group, "points", "evaluator_id"])
        .filter((position > trim) & (position <= n - trim))
        .group_by(key)
        .agg(
            pl.col("points").filter(pl.col("dimension") == d).mean().alias(d)
            for d in dimensions
        )
    )
    described = (
        evaluations.sort(ORDER_COLUMN, "_source_row")
        .group_by(key, maintain_order=True)
        .agg(
            pl.col("uscc", "product_name", "origin_city", "category").last(),
            pl.col("evaluator_id").n_unique().cast(pl.Int64).alias("evaluators"),
            _sorted_unique(pl.col("_batch_id")).alias("source_batches"),
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
    ``overall`` of :func:`gift_products`."""
    return products.group_by("uscc").agg(
        pl.col("overall").mean().alias("gift_score"),
        _sorted_unique(pl.col("source_batches").explode()).alias("gift_batches"),
    )


def registry_tables(
    inputs: StagedInputs,
    as_of: date,
    model: ScoreModel,
    division_regions: Mapping[str, str],
) -> RegistryTables:
    """The scored merchants table (every published column but the listing dates) and the gift
    product table, sorted, in their fixed column order. Depends only on ``inputs``, ``as_of``
    and the model.

    Everything is computed from unrounded inputs, and every published score is rounded once,
    here: the products' dimensions and ``overall``, the merchants' ``gift_score``, and the
    score columns (in :func:`~registry.build.scores.scores_explained`)."""
    filings = latest_rows(inputs.merchants, NATURAL_KEYS["merchants"])
    complaints = latest_rows(inputs.complaints, NATURAL_KEYS["complaints"])
    inspections = latest_rows(inputs.inspections, NATURAL_KEYS["inspections"])
    evaluations = latest_rows(inputs.gift_evaluations, NATURAL_KEYS["gift_evaluations"])

    products = gift_products(evaluations, model)
    no_batches = pl.lit([], dtype=_STRINGS)
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
    return RegistryTables(merchants=merchants, products=published_products)


# ---------------------------------------------------------------------------------------------
# Reading batch records and staged rows (the I/O edge of the build)


def _staged_batch(storage: Storage, record: BatchRecord, order: int) -> pl.LazyFrame:
    """The staged rows ``record`` reads (a duplicate's come from the batch that first staged
    them), labelled with its batch id and its rank in ledger order."""
    where = staged_prefix(record.dataset, record.region, record.stages)
    expected = STAGED_COLUMNS[record.dataset]
    scan = storage.scan_parquet(where + "*.parquet", hive_partitioning=False)
    schema = storage.retried_read(where, scan.collect_schema)
    problems = [
        f"{name} is {schema.get(name, 'missing')}, expected {dtype}"
        for name, dtype in expected.items()
        if schema.get(name) != dtype
    ]
    if problems:
        raise StagedSchemaError(f"{where}: " + "; ".join(problems))
    return scan.select(list(expected)).with_columns(
        pl.lit(record.batch_id).alias("_batch_id"),
        pl.lit(order, dtype=pl.Int64).alias(ORDER_COLUMN),
    )


def _quarantined_keys(storage: Storage, record: BatchRecord) -> pl.LazyFrame:
    """The natural keys of the rows ``record`` quarantined (as the council wrote them)."""
    columns = [c for c in NATURAL_KEYS[record.dataset] if c != "region"]
    quarantined = storage.scan_parquet(
        quarantine_prefix(record.dataset, record.region, record.stages) + "*.parquet",
        hive_partitioning=False)
    return quarantined.select(pl.col(c).cast(pl.String) for c in columns).drop_nulls()


def _rows_in_effect(storage: Storage, effect: InEffect, order: Mapping[str, int]
                    ) -> list[pl.LazyFrame]:
    frames = [_staged_batch(storage, record, order[record.batch_id])
              for record in effect.batches]
    replace = effect.replace
    if replace is not None and effect.before is not None and replace.quarantined:
        # A complete list's quarantined filings keep the row they had just before it: a typo
        # never withdraws a filing, only leaving it out of the list does.
        keys = [c for c in NATURAL_KEYS[effect.dataset] if c != "region"]
        kept = _quarantined_keys(storage, replace)
        frames.extend(
            frame.join(kept, on=keys, how="semi")
            for frame in _rows_in_effect(storage, effect.before, order)
        )
    return frames


def staged_inputs(storage: Storage, effects: Iterable[InEffect]) -> StagedInputs:
    """Lazy scans of the staged rows that count (:func:`registry.ledger.in_effect`), only the
    columns the build reads plus :data:`ORDER_COLUMN`. Raises :class:`StagedSchemaError` for
    a batch whose columns differ from the ingest contract, naming the batch and the columns."""
    effects = list(effects)
    ranked = sorted({(r.order, r.batch_id) for e in effects for r in e.all_batches()})
    order = {batch_id: rank for rank, (_, batch_id) in enumerate(ranked)}
    frames: dict[str, list[pl.LazyFrame]] = {dataset: [] for dataset in DATASETS}
    for effect in effects:
        if effect.dataset not in frames:
            raise ValueError(f"{effect.region}: unknown dataset {effect.dataset!r}")
        frames[effect.dataset].extend(_rows_in_effect(storage, effect, order))
    empty = {ORDER_COLUMN: pl.Int64}
    return StagedInputs(
        **{
            dataset: pl.concat(parts, how="vertical")
            if parts
            else pl.LazyFrame(schema={**STAGED_COLUMNS[dataset], **empty})
            for dataset, parts in frames.items()
        }
    )
