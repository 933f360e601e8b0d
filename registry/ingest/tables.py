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


# How a cell left empty, or written as 同上, came to be read with another cell's value.
MERGED = "merged"  # part of a merged range, which Excel stores in its first cell only
DITTO = "ditto"  # 同上 or 〃: the value of the cell above


@dataclass(frozen=True)
class FilledCells:
    """Cells of one column under the header that were read with another cell's value: the
    rows of a merged range (``kind`` :data:`MERGED`), or a run of ditto marks (:data:`DITTO`),
    by the column's header and the first and last rows (the clerk's numbers). The value is not
    kept: it may be personal data."""

    kind: str
    column: str
    first_row: int
    last_row: int

    def as_dict(self) -> dict[str, object]:
        """As receipts and ``registry check --json`` show it, with a sentence in zh and en."""
        rows = f"{self.first_row}–{self.last_row}"
        if self.kind == MERGED:
            zh = f"第 {rows} 行的「{self.column}」是一个合并单元格，每行都按其中的值读取"
            en = (f"rows {rows} of column {self.column} are one merged cell: each row was read "
                  "with its value")
        else:
            zh = f"第 {rows} 行的「{self.column}」写的是「同上」或〃，每行都按上一行的值读取"
            en = (f"rows {rows} of column {self.column} say 同上 or 〃 (same as above): each "
                  "was read with the value of the row above")
        return {"column": self.column, "first_row": self.first_row, "last_row": self.last_row,
                "message_zh": zh, "message_en": en}


def filled_cells_as_dicts(filled: list[FilledCells]) -> dict[str, list[dict[str, object]]]:
    """The receipt's and ``registry check --json``'s ``merged_cells`` and ``ditto_cells``."""
    return {"merged_cells": [f.as_dict() for f in filled if f.kind == MERGED],
            "ditto_cells": [f.as_dict() for f in filled if f.kind == DITTO]}


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
    filled: list[FilledCells] = field(default_factory=list)
