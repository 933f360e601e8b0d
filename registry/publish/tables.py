"""The published tables of one snapshot: built from the staged rows in effect and the previous
snapshot, serialised to Parquet, and summarised for the manifest."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import polars as pl
import pyarrow as pa

from registry.build.changes import merchants_dated
from registry.build.columns import MERCHANT_COLUMNS
from registry.build.tables import registry_tables
from registry.config.contracts import load_contracts, natural_keys
from registry.config.published import PublishedContract
from registry.config.regions import load_regions
from registry.config.score_model import load_score_model
from registry.config.settings import Settings
from registry.publish.state import StateUpdate, input_batches, refresh_state, state_inputs
from registry.snapshot.delta import merchant_changes
from registry.snapshot.reader import open_snapshot
from registry.storage import Storage
from registry.storage.layout import STAGED_PREFIX, snapshot_prefix

TABLE_ORDER = ("merchants", "products", "changes", "complaints_summary")


@dataclass(frozen=True)
class BuiltSnapshot:
    tables: dict[str, pl.DataFrame]
    input_batches: list[str]
    state: StateUpdate


def snapshot_tables(
    storage: Storage, settings: Settings, as_of: date, previous: str | None, *,
    full: bool = False,
) -> BuiltSnapshot:
    """The published tables (:data:`TABLE_ORDER`) for ``as_of``, from the current state
    brought forward to the publishable staged batches (rebuilt from every one when ``full``;
    :mod:`registry.publish.state`) and the ``previous`` snapshot (verified) for the delta and
    the listing dates."""
    model = load_score_model(settings.config_dir, settings.score_model_version).model
    regions = load_regions(settings.config_dir)
    keys = natural_keys(load_contracts(settings.schemas_dir))
    state = refresh_state(storage, settings, keys, model.window_days, as_of, full=full)
    inputs = state_inputs(storage, state.pointer, as_of - timedelta(days=model.window_days))
    built = registry_tables(inputs, as_of, model, regions.division_regions, keys)
    # The reads of staged rows and of the previous snapshot happen at these collects.
    current = storage.retried_read(STAGED_PREFIX, built.merchants.collect)
    before = None
    if previous:
        previous_merchants = open_snapshot(storage, previous).merchants
        before = storage.retried_read(snapshot_prefix(previous), previous_merchants.collect)
    changes = merchant_changes(before, current)
    merchants = merchants_dated(current, before, changes, as_of).select(MERCHANT_COLUMNS)
    products = storage.retried_read(STAGED_PREFIX, built.products.collect)
    # Without common-subplan caching: the summary reads the complaints in several branches, and
    # a cached branch holds every complaint of the window at once (5.5 GB against 3.8 GB on
    # tier L).
    complaints = storage.retried_read(STAGED_PREFIX, lambda: built.complaints_summary.collect(
        optimizations=pl.QueryOptFlags(comm_subplan_elim=False)))
    return BuiltSnapshot(
        tables={"merchants": merchants, "products": products, "changes": changes,
                "complaints_summary": complaints},
        input_batches=input_batches(state.pointer),
        state=state,
    )


class ContractMismatch(ValueError):
    """A built table's columns or types differ from its published contract: a build bug,
    caught before anything is written."""


# The Parquet key-value metadata naming the contract a file was written to.
CONTRACT_METADATA_KEY = "yrd-registry:contract"
# Rows per Parquet row group. The merchants table is sorted by USCC and every column has min/max
# statistics, so a point lookup (Snapshot.merchant, or DuckDB's WHERE uscc = ...) reads the
# footer and the one row group whose USCC range holds the code. Smaller groups mean less to
# decode per lookup but a larger footer to fetch and parse every time: on 10M merchants over
# S3 on loopback, 32768 rows (306 groups, a 0.9 MB footer) answered fastest across polars and
# DuckDB, against polars' default of about 123k rows (81 groups) (bench/lookup.py).
ROW_GROUP_ROWS = 32 * 1024


def parquet_bytes(frame: pl.DataFrame, contract: PublishedContract) -> bytes:
    """``frame`` as a Parquet file of the published table ``contract`` describes: each field
    carries its English and Chinese descriptions (Arrow field metadata ``description`` and
    ``description_zh``), and the file names the contract and its version.

    In memory, so the bytes hashed are the bytes written; no wall-clock value is inside.
    Raises :class:`ContractMismatch` when the columns, their order or types differ from the
    contract."""
    if dict(frame.schema) != contract.schema:
        raise ContractMismatch(
            f"{contract.table}: built columns {dict(frame.schema)} differ from contract "
            f"{contract.version} {contract.schema}"
        )
    described = {c.name: c for c in contract.columns}
    arrow_schema = pa.schema([
        field.with_metadata({
            "description": described[field.name].description_en,
            "description_zh": described[field.name].description_zh,
        })
        for field in frame.head(0).to_arrow().schema
    ])
    buffer = io.BytesIO()
    frame.write_parquet(
        buffer, compression="zstd", statistics=True, row_group_size=ROW_GROUP_ROWS,
        arrow_schema=arrow_schema,
        metadata={CONTRACT_METADATA_KEY: f"{contract.table} {contract.version}"},
    )
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
