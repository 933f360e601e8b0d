"""The build's columns: the staged columns it reads per dataset, and the published tables'
columns in their fixed order, which their contracts own (``contracts/{table}.odcs.yaml``,
:mod:`registry.config.published`).

The staged columns are a selection of the ingest contracts (``schemas/*.yaml``); a test holds
them against the contracts. Nothing else is read, so PII columns never enter the build.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from registry.config.published import load_published_contracts

_PUBLISHED = load_published_contracts()
COMMITMENT_FLAGS = (
    "chinese_label",
    "traceable",
    "no_reason_return_7d",
    "offline_no_reason_return",
    "advance_compensation",
)
MERCHANT_COLUMNS = _PUBLISHED["merchants"].column_names
# Carried forward from the previous snapshot (registry.build.changes), not built from staged rows.
LISTING_DATE_COLUMNS = ("first_listed_on", "last_changed_on")
GIFT_DIMENSIONS = ("quality", "culture", "packaging", "value")
PRODUCT_KEY = _PUBLISHED["products"].key
PRODUCT_COLUMNS = _PUBLISHED["products"].column_names
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
        "category": pl.String,
        "status": pl.String,
        "resolved_on": pl.Date,
        "recovered_amount_cny": pl.Float64,
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
    """Staged rows of every dataset, restricted to the batches in effect.

    ``current`` says that each dataset already holds only the current row of every natural
    key (the compacted current state, :mod:`registry.publish.state`), so the build need not
    find them again; otherwise it does (:func:`registry.build.merchants.latest_rows`)."""

    merchants: pl.LazyFrame
    complaints: pl.LazyFrame
    inspections: pl.LazyFrame
    gift_evaluations: pl.LazyFrame
    current: bool = False
