"""The build's columns: the staged columns it reads per dataset, and the published tables'
columns in their fixed order (output contract v1).

The staged columns are a selection of the ingest contracts (``schemas/*.yaml``); a test holds
them against the contracts. Nothing else is read, so PII columns never enter the build.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

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
    # Added in contract 1.1.0, after the v1 columns so that v1 readers keep their positions.
    "verdict",
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
STRING_LIST = pl.List(pl.String)
# The staged columns the build reads, per dataset: a selection of each ingest contract's staged
# schema. Nothing else is read, so PII columns never even enter the build.
STAGED_COLUMNS: dict[str, dict[str, pl.DataType]] = {
    "merchants": {
        "region": pl.String,
        "filing_id": pl.String,
        "uscc": pl.String,
        "merchant_name": pl.String,
        "merchant_name_key": pl.String,
        "program": pl.String,
        "categories": STRING_LIST,
        "origin_countries": STRING_LIST,
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


class StagedSchemaError(ValueError):
    """A staged batch does not have the columns or types of the ingest contract."""


@dataclass(frozen=True)
class StagedInputs:
    """Staged rows of every dataset, restricted to the batches in effect."""

    merchants: pl.LazyFrame
    complaints: pl.LazyFrame
    inspections: pl.LazyFrame
    gift_evaluations: pl.LazyFrame
