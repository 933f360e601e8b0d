"""An upload read as text: the table every reader returns, and the limits it is read under."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

# The row number the clerk sees, on every table and every staged or quarantined row.
SOURCE_ROW = "_source_row"


@dataclass(frozen=True)
class Limits:
    """Limits past which an upload is refused whole (from the settings:
    :func:`registry.ingest.pipeline.read_limits`).

    With ``max_read_seconds`` and ``max_read_memory_bytes`` set, every upload is read in a
    worker process held to them (:mod:`registry.ingest.read_worker`); without, it is read here."""

    max_upload_bytes: int
    max_rows: int
    max_columns: int
    max_cells: int
    max_cell_chars: int
    max_xlsx_uncompressed_bytes: int
    max_read_seconds: float | None = None
    max_read_memory_bytes: int | None = None


@dataclass(frozen=True)
class SkippedNote:
    """A footer row that was not read as data: its row number and the words it starts with."""

    row: int
    starts_with: str


@dataclass(frozen=True)
class UploadTable:
    """An upload as text. ``rows`` has one String column per header cell, named ``c0``,
    ``c1``... in header order, plus ``_source_row`` (Int64): the row number the clerk sees
    (Excel row, CSV record number counting the header, JSONL line, Parquet record)."""

    format: str
    header: list[str]
    rows: pl.DataFrame
    encoding: str | None = None
    sheet: str | None = None
    notes: list[SkippedNote] = field(default_factory=list)
