"""The published tables of one snapshot: built from the staged rows in effect and the previous
snapshot, serialised to Parquet, and summarised for the manifest."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import polars as pl

from registry.build.changes import merchant_changes, merchants_dated
from registry.build.columns import MERCHANT_COLUMNS
from registry.build.tables import registry_tables
from registry.config.contracts import load_contracts, natural_keys
from registry.config.regions import load_regions
from registry.config.score_model import load_score_model
from registry.config.settings import Settings
from registry.ledger import batches_in_effect
from registry.publish.inputs import staged_inputs
from registry.snapshot.reader import open_snapshot
from registry.storage import Storage
from registry.storage.layout import STAGED_PREFIX, snapshot_prefix

TABLE_ORDER = ("merchants", "products", "changes")


@dataclass(frozen=True)
class BuiltSnapshot:
    tables: dict[str, pl.DataFrame]
    input_batches: list[str]


def snapshot_tables(
    storage: Storage, settings: Settings, as_of: date, previous: str | None
) -> BuiltSnapshot:
    """The three published tables for ``as_of``, from the publishable staged batches and the
    ``previous`` snapshot (verified) for the delta and the listing dates."""
    model = load_score_model(settings.config_dir, settings.score_model_version).model
    regions = load_regions(settings.config_dir)
    keys = natural_keys(load_contracts(settings.schemas_dir))
    effects = batches_in_effect(storage)
    built = registry_tables(staged_inputs(storage, effects, keys), as_of, model,
                            regions.division_regions, keys)
    # The reads of staged rows and of the previous snapshot happen at these collects.
    current = storage.retried_read(STAGED_PREFIX, built.merchants.collect)
    before = None
    if previous:
        previous_merchants = open_snapshot(storage, previous).merchants
        before = storage.retried_read(snapshot_prefix(previous), previous_merchants.collect)
    changes = merchant_changes(before, current)
    merchants = merchants_dated(current, before, changes, as_of).select(MERCHANT_COLUMNS)
    products = storage.retried_read(STAGED_PREFIX, built.products.collect)
    return BuiltSnapshot(
        tables={"merchants": merchants, "products": products, "changes": changes},
        input_batches=sorted({b.batch_id for e in effects for b in e.all_batches()}),
    )


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    # In memory, so the bytes hashed are the bytes written; no wall-clock value is inside.
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getvalue()


def table_summary(tables: Mapping[str, pl.DataFrame]) -> dict[str, dict[str, int]]:
    merchants = tables["merchants"]
    trusted = merchants.filter(pl.col("trusted"))
    return {
        "rows": {name: frame.height for name, frame in tables.items()},
        "trusted_by_grade": dict(sorted(Counter(trusted.get_column("grade").to_list()).items())),
        "grades": dict(
            sorted(Counter(g or "none" for g in merchants.get_column("grade").to_list()).items())
        ),
        "changes": dict(sorted(Counter(tables["changes"].get_column("change").to_list()).items())),
    }
