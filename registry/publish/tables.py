"""The published tables of one snapshot: built from the staged rows in effect and the previous
snapshot one USCC range at a time, written to Parquet part by part, and summarised for the
manifest (docs/architecture.md §11.9)."""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from registry.build.changes import merchants_dated
from registry.build.columns import MERCHANT_COLUMNS
from registry.build.tables import registry_products, registry_tables
from registry.config.contracts import load_contracts, natural_keys
from registry.config.published import PublishedContract, load_published_contracts
from registry.config.regions import load_regions
from registry.config.score_model import load_score_model
from registry.config.settings import Settings
from registry.publish.state import (
    StateUpdate,
    UsccRange,
    input_batches,
    refresh_state,
    state_inputs,
    uscc_ranges,
)
from registry.snapshot.delta import merchant_changes
from registry.snapshot.reader import Snapshot, open_snapshot
from registry.storage import Storage
from registry.storage.layout import STAGED_PREFIX, snapshot_prefix

TABLE_ORDER = ("merchants", "products", "changes", "complaints_summary")
# Without common-subplan caching: the complaints summary reads the complaints in several
# branches, and a cached branch holds every complaint of the window at once.
_NO_SUBPLAN_CACHE = pl.QueryOptFlags(comm_subplan_elim=False)


@dataclass(frozen=True)
class SnapshotParts:
    """What a publication builds, before it is written: the state it was built from, its input
    batches, the USCC ranges, and the tables' parts as ``(table, frame)`` in the order they are
    built (each range's merchants then changes, in USCC order, then the products and the
    complaints summary). Each part is built when the iterator reaches it."""

    state: StateUpdate
    input_batches: list[str]
    ranges: list[UsccRange]
    parts: Iterator[tuple[str, pl.DataFrame]]
    # The previous snapshot, opened and verified (None for the first publication).
    previous: Snapshot | None


def snapshot_parts(
    storage: Storage, settings: Settings, as_of: date, previous: str | None, *,
    full: bool = False, range_filings: int | None = None,
) -> SnapshotParts:
    """The published tables (:data:`TABLE_ORDER`) for ``as_of``, from the current state
    brought forward to the publishable staged batches (rebuilt from every one when ``full``;
    :mod:`registry.publish.state`) and the ``previous`` snapshot (verified) for the delta and
    the listing dates.

    The merchants and changes tables are built one USCC range of about ``range_filings``
    filings at a time (``settings.publish_range_filings`` by default): a range holds its own
    merchants' rows, the previous snapshot's rows of the same codes, and the gift products of
    the whole registry, so the tables do not depend on how the codes were split."""
    model = load_score_model(settings.config_dir, settings.score_model_version).model
    regions = load_regions(settings.config_dir)
    keys = natural_keys(load_contracts(settings.schemas_dir))
    state = refresh_state(storage, settings, keys, model.window_days, as_of, full=full)
    cutoff = as_of - timedelta(days=model.window_days)
    ranges = uscc_ranges(storage, state.pointer,
                         range_filings or settings.publish_range_filings)
    whole = state_inputs(storage, state.pointer, cutoff)
    snapshot = open_snapshot(storage, previous) if previous else None

    def built() -> Iterator[tuple[str, pl.DataFrame]]:
        # The reads of staged rows and of the previous snapshot happen at these collects.
        products = storage.retried_read(
            STAGED_PREFIX, registry_products(whole, model, keys).collect).lazy()
        for uscc_range in ranges:
            inputs = state_inputs(storage, state.pointer, cutoff, uscc_range=uscc_range)
            tables = registry_tables(inputs, as_of, model, regions.division_regions, keys,
                                     products=products)
            current = storage.retried_read(STAGED_PREFIX, tables.merchants.collect)
            before = None
            if snapshot is not None:
                rows = snapshot.merchants.filter(uscc_range.holds())
                before = storage.retried_read(snapshot_prefix(snapshot.snapshot_id),
                                              rows.collect)
            changes = merchant_changes(before, current)
            yield "merchants", merchants_dated(current, before, changes, as_of).select(
                MERCHANT_COLUMNS)
            yield "changes", changes
            del current, before, changes  # before the next range is read
        tables = registry_tables(whole, as_of, model, regions.division_regions, keys,
                                 products=products)
        yield "products", storage.retried_read(STAGED_PREFIX, tables.products.collect)
        yield "complaints_summary", storage.retried_read(
            STAGED_PREFIX,
            lambda: tables.complaints_summary.collect(optimizations=_NO_SUBPLAN_CACHE))

    return SnapshotParts(state=state, input_batches=input_batches(state.pointer),
                         ranges=ranges, parts=built(), previous=snapshot)


@dataclass(frozen=True)
class BuiltSnapshot:
    """The published tables held whole in memory (for tests and benchmarks; a publication
    writes them part by part: :func:`write_snapshot_tables`)."""

    tables: dict[str, pl.DataFrame]
    input_batches: list[str]
    state: StateUpdate


def snapshot_tables(
    storage: Storage, settings: Settings, as_of: date, previous: str | None, *,
    full: bool = False, range_filings: int | None = None,
) -> BuiltSnapshot:
    """:func:`snapshot_parts`, each table's parts concatenated."""
    built = snapshot_parts(storage, settings, as_of, previous, full=full,
                           range_filings=range_filings)
    parts: dict[str, list[pl.DataFrame]] = {name: [] for name in TABLE_ORDER}
    for name, frame in built.parts:
        parts[name].append(frame)
    return BuiltSnapshot(
        tables={name: pl.concat(frames) for name, frames in parts.items()},
        input_batches=built.input_batches, state=built.state,
    )


@dataclass(frozen=True)
class WrittenTable:
    """One published table written to a local Parquet file (:class:`TableWriter`)."""

    name: str
    path: Path
    sha256: str
    bytes: int
    rows: int
    # Rows per frame when the file is read back part by part (:meth:`__iter__`).
    part_rows: int

    def __iter__(self) -> Iterator[pl.DataFrame]:
        """The table's rows in order, ``part_rows`` at a time (whole row groups; one empty
        frame for an empty table): what the checks read, in bounded memory."""
        if not self.rows:  # an empty table is one empty part
            yield pl.read_parquet(self.path)
            return
        batch = max(ROW_GROUP_ROWS, self.part_rows // ROW_GROUP_ROWS * ROW_GROUP_ROWS)
        for record_batch in pq.ParquetFile(self.path).iter_batches(batch_size=batch):
            frame = pl.from_arrow(record_batch)
            assert isinstance(frame, pl.DataFrame)
            yield frame

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()


@dataclass
class SnapshotSummary:
    """The manifest's ``summary``: rows per table, trusted merchants and every merchant per
    grade, and changes per kind; counted part by part as the tables are written."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLE_ORDER, 0))
    trusted_by_grade: Counter[str] = field(default_factory=Counter)
    grades: Counter[str] = field(default_factory=Counter)
    changes: Counter[str] = field(default_factory=Counter)

    def add(self, table: str, frame: pl.DataFrame) -> None:
        self.rows[table] += frame.height
        if table == "merchants":
            self.trusted_by_grade.update(_counts(frame.filter(pl.col("trusted")), "grade"))
            self.grades.update(_counts(frame.with_columns(pl.col("grade").fill_null("none")),
                                       "grade"))
        elif table == "changes":
            self.changes.update(_counts(frame, "change"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": dict(self.rows),
            "trusted_by_grade": dict(sorted(self.trusted_by_grade.items())),
            "grades": dict(sorted(self.grades.items())),
            "changes": dict(sorted(self.changes.items())),
        }


def _counts(frame: pl.DataFrame, column: str) -> dict[str, int]:
    counted = frame.get_column(column).value_counts()
    return dict(zip(counted.get_column(column).to_list(), counted.get_column("count").to_list(),
                    strict=True))


@dataclass(frozen=True)
class WrittenSnapshot:
    files: dict[str, WrittenTable]
    summary: dict[str, Any]
    input_batches: list[str]
    state: StateUpdate
    ranges: list[UsccRange]
    # The previous snapshot, opened and verified (None for the first publication).
    previous: Snapshot | None


def write_snapshot_tables(
    storage: Storage, settings: Settings, as_of: date, previous: str | None, folder: Path, *,
    full: bool = False, range_filings: int | None = None,
) -> WrittenSnapshot:
    """:func:`snapshot_parts`, each table written to ``folder/{table}.parquet`` part by part as
    it is built, and summarised: memory holds one range's tables at a time."""
    built = snapshot_parts(storage, settings, as_of, previous, full=full,
                           range_filings=range_filings)
    contracts = load_published_contracts()
    part_rows = range_filings or settings.publish_range_filings
    summary = SnapshotSummary()
    writers = {name: TableWriter(folder / f"{name}.parquet", contracts[name])
               for name in TABLE_ORDER}
    try:
        for name, frame in built.parts:
            writers[name].write(frame)
            summary.add(name, frame)
            del frame
    finally:
        for writer in writers.values():
            writer.close()
    files = {name: writer.written(part_rows) for name, writer in writers.items()}
    return WrittenSnapshot(files=files, summary=summary.as_dict(),
                           input_batches=built.input_batches, state=built.state,
                           ranges=built.ranges, previous=built.previous)


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


class TableWriter:
    """Writes the published table ``contract`` describes to a Parquet file, part by part.

    Each field carries its English and Chinese descriptions (Arrow field metadata
    ``description`` and ``description_zh``), and the file names the contract and its version.
    Rows go out in row groups of exactly :data:`ROW_GROUP_ROWS` (the last one shorter), each
    from one contiguous block, so the file's bytes depend on the rows alone, never on how they
    were split into parts; no wall-clock value is inside.

    Raises :class:`ContractMismatch` when a part's columns, their order or types differ from
    the contract."""

    def __init__(self, sink: Path | IO[bytes], contract: PublishedContract):
        self.contract = contract
        self._path = sink if isinstance(sink, Path) else None
        described = {c.name: c for c in contract.columns}
        empty = pl.DataFrame(schema=contract.schema).to_arrow().schema
        self._schema = pa.schema(
            [f.with_metadata({"description": described[f.name].description_en,
                              "description_zh": described[f.name].description_zh})
             for f in empty],
            metadata={CONTRACT_METADATA_KEY: f"{contract.table} {contract.version}"},
        )
        self._writer = pq.ParquetWriter(sink, self._schema, compression="zstd",
                                        write_statistics=True)
        self._pending: list[pl.DataFrame] = []
        self._pending_rows = 0
        self._closed = False
        self.rows = 0

    def write(self, frame: pl.DataFrame) -> None:
        if dict(frame.schema) != self.contract.schema:
            raise ContractMismatch(
                f"{self.contract.table}: built columns {dict(frame.schema)} differ from "
                f"contract {self.contract.version} {self.contract.schema}"
            )
        if frame.height:
            self._pending.append(frame)
            self._pending_rows += frame.height
        while self._pending_rows >= ROW_GROUP_ROWS:
            self._flush(ROW_GROUP_ROWS)

    def _flush(self, rows: int) -> None:
        block = pl.concat(self._pending, rechunk=False)
        group, rest = block.slice(0, rows).rechunk(), block.slice(rows)
        self._pending = [rest] if rest.height else []
        self._pending_rows = rest.height
        table = pa.Table.from_arrays(group.to_arrow().columns, schema=self._schema)
        self._writer.write_table(table, row_group_size=rows)
        self.rows += rows

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._pending_rows:
                self._flush(self._pending_rows)
        finally:
            self._writer.close()

    def written(self, part_rows: int) -> WrittenTable:
        """The closed file's description (a file-backed writer only)."""
        assert self._path is not None and self._closed
        digest = hashlib.sha256()
        with self._path.open("rb") as file:
            while chunk := file.read(1 << 20):
                digest.update(chunk)
        return WrittenTable(name=self.contract.table, path=self._path,
                            sha256=digest.hexdigest(), bytes=self._path.stat().st_size,
                            rows=self.rows, part_rows=part_rows)


def parquet_bytes(frame: pl.DataFrame, contract: PublishedContract) -> bytes:
    """``frame`` as the bytes of the Parquet file :class:`TableWriter` writes of it."""
    buffer = io.BytesIO()
    writer = TableWriter(buffer, contract)
    try:
        writer.write(frame)
    finally:
        writer.close()
    return buffer.getvalue()
