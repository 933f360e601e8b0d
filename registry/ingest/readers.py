"""Turn an upload's bytes into a table of strings, whatever the council's tool produced.

The format is judged from the content (magic bytes), not the file name: xlsx/xls through
fastexcel, Parquet, JSON Lines, or CSV in UTF-8 (with or without BOM), GB18030/GBK or Big5,
separated by commas, semicolons or tabs. Spreadsheets and CSVs may carry title rows above the
header, blank rows, and a footer of notes (填表说明, 备注, 填表人...): the header is found by
itself, blank rows are dropped and the footer is skipped and reported.

Everything is read as text. Interpreting values is :mod:`registry.ingest.normalize`'s job, so
that a value is never coerced before it can be reported.
"""

from __future__ import annotations

import codecs
import csv
import io
import posixpath
import re
import zipfile
from collections.abc import Collection
from dataclasses import dataclass, replace
from xml.etree import ElementTree

import charset_normalizer
import fastexcel
import polars as pl

from registry.config.contracts import known_header_key
from registry.ingest import read_worker
from registry.ingest import rejections as rj
from registry.ingest.tables import (
    DITTO,
    MERGED,
    SOURCE_ROW,
    FilledCells,
    Limits,
    SkippedNote,
    UploadTable,
)

HEADER_SEARCH_ROWS = 30
FOOTER_SEARCH_ROWS = 50
_XLSX_MAGIC = b"PK\x03\x04"
_XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_PARQUET_MAGIC = b"PAR1"
_UTF8_BOM = codecs.BOM_UTF8
# Files councils send by mistake, by their first bytes: NOT_A_SPREADSHEET names what they are.
_OTHER_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF87a", "gif"),
    (b"GIF89a", "gif"), (b"BM", "bmp"), (b"%PDF-", "pdf"), (b"\x1f\x8b", "gzip"),
    (b"7z\xbc\xaf\x27\x1c", "7z"), (b"Rar!\x1a\x07", "rar"),
)
# Stream names in an OLE2 container's directory (UTF-16LE). A password-protected .xlsx is an
# OLE2 container holding EncryptionInfo and EncryptedPackage; Word and PowerPoint files are
# OLE2 containers too, without a Workbook stream.
_OLE_ENCRYPTED = "EncryptedPackage".encode("utf-16-le")
_OLE_WORKBOOK = ("Workbook".encode("utf-16-le"), "Book".encode("utf-16-le"))
_OLE_OTHERS = (("WordDocument".encode("utf-16-le"), "word"),
               ("PowerPoint Document".encode("utf-16-le"), "powerpoint"))
# A zip archive's entry that says which Office document it is.
_ZIP_OTHERS = (("word/document.xml", "word"), ("ppt/presentation.xml", "powerpoint"))
# Names councils give workbooks: a file so named that reads as no text is a damaged workbook.
_WORKBOOK_NAME = re.compile(r"(?i)\.(xlsx|xlsm|xls|et)$")
_SAMPLE_BYTES = 64 * 1024
# A worksheet part's merged ranges (ECMA-376 Part 1, §18.3.1.55), with or without a namespace
# prefix: ``<mergeCell ref="C4:C7"/>``. None is longer than _MERGE_CELL_BYTES.
_MERGE_CELL = re.compile(rb'<(?:\w+:)?mergeCell\b[^>]*?\bref="([A-Z]+)(\d+)(?::([A-Z]+)(\d+))?"')
_MERGE_CELL_BYTES = 128
_RELATIONSHIP_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
# A number written out with more digits than the 15 Excel keeps (_long_numbers_as_kept).
_LONG_DIGITS = r"^\d{16,}$"
_FIRST_VISIBLE = re.compile(rb"\s*(\S)")
# Encodings a council's CSV plausibly uses; charset-normalizer picks among these.
_CANDIDATE_ENCODINGS = ["utf_8", "gb18030", "big5", "utf_16"]
# A GB18030 sample reads as Chinese when at least this share of its non-ASCII characters are
# in GB2312 (see _reads_as_chinese).
_GB2312_SHARE = 0.9
_ASCII_RUNS = re.compile(r"[\x00-\x7f]+")
_DELIMITERS = (",", ";", "\t")
# A footer line starts with one of these (after NFKC, so full-width colons are plain).
# (A polars regex: it runs over the whole column at once.)
_NOTE_START = (
    r"(?i)^\s*(填表说明|填报说明|说明|备注|注意事项|注[:：]|注\d|填表人|填报人|制表人|审核人|"
    r"负责人|填表日期|填报日期|报送单位|notes?\b|remarks?\b)"
)
# A footer row has at most this many non-empty cells ("填表人：张三", "审核人：李四").
_NOTE_MAX_CELLS = 2
# What a clerk types for "the same as the cell above": 同上, its older form 仝上, the ditto mark.
DITTO_MARKS = ("同上", "仝上", "〃")
# A cell holding one of them alone, spaces aside. Anchored, a cell fails it at its first
# characters: over 18 columns of a million rows it took 0.2 s, against 0.8 s for a search of
# the marks anywhere in each cell and 0.8-1.9 s for reading the CSV.
_DITTO_CELL = rf"^\s*(?:{'|'.join(map(re.escape, DITTO_MARKS))})\s*$"
# The formats people type; a system's JSON Lines or Parquet export writes its values out.
_TYPED_FORMATS = ("xlsx", "xls", "csv")


def upload_table(data: bytes, known_headers: Collection[str], limits: Limits) -> UploadTable:
    """Read ``data`` into an :class:`UploadTable`.

    ``known_headers`` are the :func:`header_key` forms of every header the dataset's contract
    accepts; they are how the header row is recognised under title rows.
    Raises :class:`FileRejected` when the file cannot be read or breaks a limit (see
    :class:`Limits` for the time and memory limits).
    """
    if len(data) > limits.max_upload_bytes:
        raise rj.FileRejected(
            rj.FILE_TOO_LARGE, f"{len(data):,} bytes > {limits.max_upload_bytes:,}"
        )
    if not data or data.isspace():  # isspace() stops at the first byte that is not space
        raise rj.FileRejected(rj.FILE_EMPTY)
    if limits.max_read_seconds and limits.max_read_memory_bytes:
        return read_worker.read(data, known_headers, limits)
    return read_here(data, known_headers, limits)


def read_here(data: bytes, known_headers: Collection[str], limits: Limits) -> UploadTable:
    """:func:`upload_table` in this process, whatever the time and memory limits say (the
    reading worker process reads with this), for bytes :func:`upload_table` has already
    checked for size and emptiness."""
    kind = next((kind for magic, kind in _OTHER_MAGIC if data.startswith(magic)), None)
    if kind is not None:
        raise rj.FileRejected(rj.NOT_A_SPREADSHEET, kind)
    if data.startswith(_XLSX_MAGIC):
        _check_xlsx_unpacked_size(data, limits)
        table = _spreadsheet_table(data, "xlsx", known_headers, limits)
    elif data.startswith(_XLS_MAGIC):
        _check_ole_workbook(data)
        table = _spreadsheet_table(data, "xls", known_headers, limits)
    elif data.startswith(_PARQUET_MAGIC) and data.endswith(_PARQUET_MAGIC):
        table = _parquet_table(data)
    else:
        table = _text_table(data, known_headers, limits)
    _check_limits(table, limits)
    if table.rows.is_empty():
        raise rj.FileRejected(rj.NO_DATA_ROWS)
    if table.format in _TYPED_FORMATS:
        table = _dittos_read(table)
    return table


def _check_xlsx_unpacked_size(data: bytes, limits: Limits) -> None:
    # Checked from the zip directory before anything is inflated, so a zip bomb is refused
    # without being unpacked.
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile:
        raise rj.FileRejected(rj.WORKBOOK_DAMAGED) from None
    names = {info.filename for info in infos}
    if "xl/workbook.xml" not in names:
        kind = next((kind for entry, kind in _ZIP_OTHERS if entry in names), "zip")
        raise rj.FileRejected(rj.NOT_A_SPREADSHEET, kind)
    unpacked = sum(info.file_size for info in infos)
    if unpacked > limits.max_xlsx_uncompressed_bytes:
        raise rj.FileRejected(
            rj.XLSX_TOO_LARGE, f"{unpacked:,} bytes > {limits.max_xlsx_uncompressed_bytes:,}"
        )


def _check_ole_workbook(data: bytes) -> None:
    """Refuse an OLE2 container that is not an .xls workbook: a password-protected workbook
    (WORKBOOK_ENCRYPTED), a Word or PowerPoint file (NOT_A_SPREADSHEET)."""
    if _OLE_ENCRYPTED in data:
        raise rj.FileRejected(rj.WORKBOOK_ENCRYPTED)
    if not any(name in data for name in _OLE_WORKBOOK):
        kind = next((kind for name, kind in _OLE_OTHERS if name in data), "ole")
        raise rj.FileRejected(rj.NOT_A_SPREADSHEET, kind)


def refusal_for_name(error: rj.FileRejected, file: str) -> rj.FileRejected:
    """``error`` as the clerk should read it, given the upload's file name: a file named like a
    workbook that is no workbook and reads as no text (an encoding problem, NUL bytes) is a
    damaged workbook, not a CSV with an unknown encoding. Any other refusal is returned as is."""
    if _WORKBOOK_NAME.search(file) and error.code in (rj.ENCODING_UNDECODABLE,
                                                      rj.FILE_UNREADABLE):
        return rj.FileRejected(rj.WORKBOOK_DAMAGED)
    return error


def _spreadsheet_table(
    data: bytes, fmt: str, known_headers: Collection[str], limits: Limits
) -> UploadTable:
    """The data sheet of a workbook (:func:`_data_sheet`), read as text."""
    try:
        reader = fastexcel.read_excel(data)
        sheets = []
        for name in reader.sheet_names:
            # header_row=None with skip_rows=0 keeps leading empty rows, so that index i is
            # Excel row i + 1 (fastexcel otherwise drops them and the numbers would shift).
            head = reader.load_sheet(name, header_row=None, skip_rows=0,
                                     n_rows=HEADER_SEARCH_ROWS, dtypes="string")
            if head.width > limits.max_columns:
                raise rj.FileRejected(rj.TOO_MANY_COLUMNS, f"{head.width} > {limits.max_columns}")
            grid = head.to_polars()
            if not grid.width or _blank_rows(grid).all():
                continue
            at, score = _header_score(grid.rows(), known_headers)
            rows_under = at >= 0 and (head.total_height > grid.height
                                      or not _blank_rows(grid.slice(at + 1)).all())
            sheets.append(_SheetHead(name, score, rows_under, head.visible == "visible"))
        name = _data_sheet(sheets)
        sheet = reader.load_sheet(name, header_row=None, skip_rows=0, dtypes="string")
        grid = _long_numbers_as_kept(reader, name, sheet.to_polars())
        grid = grid.rename({c: f"c{i}" for i, c in enumerate(grid.columns)})
        header_at = _header_position(grid.head(HEADER_SEARCH_ROWS).rows(), known_headers)
        # Excel keeps a merged range's value in its first cell only: the others are empty.
        merged: list[FilledCells] = []
        if grid.slice(header_at + 1).null_count().sum_horizontal().item():
            ranges = (_xlsx_merged_ranges(data, name) if fmt == "xlsx"
                      else _xls_merged_ranges(data, name))
            sheet_columns = [column.absolute_index for column in sheet.available_columns()]
            grid, merged = _merged_filled(grid, sheet_columns, header_at, ranges)
    except rj.FileRejected:
        raise
    except Exception as exc:  # fastexcel raises its own hierarchy for damaged or locked files
        # Its messages are the library's internals (CalamineError ... Context): the clerk is
        # told what is wrong in their words instead.
        locked = re.search(r"(?i)password|encrypt", str(exc))
        raise rj.FileRejected(rj.WORKBOOK_ENCRYPTED if locked else rj.WORKBOOK_DAMAGED
                              ) from None
    header = [cell or "" for cell in grid.row(header_at)]
    rows = grid.slice(header_at + 1).with_columns(
        pl.int_range(header_at + 2, header_at + 2 + grid.height - header_at - 1, dtype=pl.Int64)
        .alias(SOURCE_ROW)
    )
    rows, notes = _without_blanks_and_footer(rows)
    return UploadTable(format=fmt, header=header, rows=rows, sheet=name, notes=notes,
                       filled=merged)


@dataclass(frozen=True)
class _SheetHead:
    """What the first rows of a workbook's sheet say: how many known columns its header row
    names (:func:`_header_score`), whether rows follow that header, and whether it is shown."""

    name: str
    score: int
    rows_under_header: bool
    visible: bool


def _data_sheet(sheets: list[_SheetHead]) -> str:
    """The name of the sheet to read among the non-empty ``sheets``, in workbook order.

    A data sheet has a header naming known columns and rows under it. The one visible data
    sheet is read: a 填表说明 sheet may come first, and a clerk who keeps last month's list on
    a hidden sheet means the shown one. With no visible data sheet, the one hidden data sheet
    is read. Two or more in the same group are refused (SEVERAL_DATA_SHEETS): which list the
    council means cannot be told, and reading the wrong one would publish stale verdicts.
    With no data sheet at all, the sheet naming the most known columns (the first on a tie)
    is read, for the reader to say what is missing in it."""
    if not sheets:
        raise rj.FileRejected(rj.NO_DATA_ROWS)
    for visible in (True, False):
        data = [s for s in sheets if s.visible == visible and s.rows_under_header]
        if len(data) > 1:
            raise rj.FileRejected(rj.SEVERAL_DATA_SHEETS, ", ".join(s.name for s in data))
        if data:
            return data[0].name
    best = max(s.score for s in sheets)
    return next(s.name for s in sheets if s.score == best)


def _merged_filled(grid: pl.DataFrame, sheet_columns: list[int], header_at: int,
                   ranges: list[tuple[int, int, int, int]]
                   ) -> tuple[pl.DataFrame, list[FilledCells]]:
    """``grid`` with the empty cells of each range of ``ranges`` (first row, first column, last
    row, last column; 0-based sheet coordinates) that merges rows of one column under the header
    given the value of the range's first cell, and the ranges so read.

    A clerk merges the cells of rows that share a value (one tall 上海 beside every Shanghai
    row, one 撤销 beside two filings revoked together): each of those rows shows the value and
    means it, but Excel keeps it in the first cell only. Read as stored, every row under the
    first would be refused for a missing value, and a refused row keeps its filing's previous
    status. Ranges across columns are left as they are: they are titles, notes and headers
    spanning a table, not one value per cell. ``sheet_columns`` are the sheet columns of the
    grid's columns (fastexcel leaves out empty leading columns)."""
    position = {column: i for i, column in enumerate(sheet_columns)}
    header = grid.row(header_at)
    fills: dict[int, list[str | None]] = {}
    merged = []
    for r0, c0, r1, c1 in sorted(ranges):
        if c1 != c0 or r1 == r0 or r0 <= header_at or r0 >= grid.height or c0 not in position:
            continue
        i = position[c0]
        value = grid[r0, i]
        if value is None or not value.strip():
            continue
        last = min(r1, grid.height - 1)
        column = fills.setdefault(i, [None] * grid.height)
        column[r0:last + 1] = [value] * (last + 1 - r0)
        # Sheet row r is the clerk's row r + 1.
        merged.append(FilledCells(MERGED, header[i] or f"#{c0 + 1}", r0 + 1, last + 1))
    filled = grid.with_columns(
        pl.coalesce(grid.columns[i], pl.Series(values, dtype=pl.String)).alias(grid.columns[i])
        for i, values in fills.items())
    return filled, merged


def _dittos_read(table: UploadTable) -> UploadTable:
    """``table`` with each cell that says only 同上, 仝上 or 〃 (:data:`DITTO_MARKS`) read with
    the value of the cell above it in its column, and each run of such cells recorded in
    ``filled`` (:data:`~registry.ingest.tables.DITTO`).

    A clerk writes 同上 instead of typing 上海 again, or 撤销 beside the second of two filings
    revoked together, or a merchant's credit code under each complaint against it after the
    first. The row means the value above; read as written, it would be refused, and a refused
    row keeps its filing's previous status or goes uncounted. A run of marks repeats the last
    value above it. A mark with no value above it (in the first row, or under an empty cell)
    is left as written, for the row to be refused with the word shown."""
    rows = table.rows
    columns = [c for c in rows.columns if c != SOURCE_ROW]
    marks = rows.select(pl.col(columns).str.contains(_DITTO_CELL).fill_null(False))
    marked_columns = [c for c in columns if marks[c].any()]
    if not marked_columns:
        return table
    filled = list(table.filled)
    replaced = []
    for c in marked_columns:
        frame = pl.DataFrame([rows[c].alias("value"), marks[c].alias("mark"), rows[SOURCE_ROW]])
        frame = frame.with_columns(
            pl.col("value").gather(pl.when(~pl.col("mark")).then(pl.int_range(pl.len()))
                                   .forward_fill()).alias("above"))
        frame = frame.with_columns((pl.col("mark") & pl.col("above").is_not_null())
                                   .alias("read"))
        replaced.append(pl.when(frame["read"]).then(frame["above"]).otherwise(frame["value"])
                        .alias(c))
        runs = (frame.with_row_index("at").filter(pl.col("read"))
                .group_by((pl.col("at") - pl.int_range(pl.len())).alias("run"),
                          maintain_order=True)
                .agg(pl.col(SOURCE_ROW).first().alias("first"),
                     pl.col(SOURCE_ROW).last().alias("last")))
        i = int(c[1:])
        name = table.header[i] if i < len(table.header) and table.header[i] else f"#{i + 1}"
        filled += [FilledCells(DITTO, name, first, last)
                   for first, last in runs.select("first", "last").iter_rows()]
    return replace(table, rows=rows.with_columns(replaced), filled=filled)


def _column_number(letters: bytes) -> int:
    """The 0-based index of an Excel column's letters (``A`` is 0, ``AA`` is 26)."""
    n = 0
    for letter in letters:
        n = n * 26 + letter - ord("A") + 1
    return n - 1


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xlsx_sheet_part(archive: zipfile.ZipFile, sheet: str) -> str | None:
    """The zip entry of the worksheet named ``sheet``: the workbook part names its
    relationship, and the relationship its part."""
    workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
    relationship = next((e.get(_RELATIONSHIP_ID) for e in workbook.iter()
                         if _local_name(e.tag) == "sheet" and e.get("name") == sheet), None)
    try:
        relationships = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except KeyError:
        return None
    target = next((e.get("Target") for e in relationships.iter()
                   if _local_name(e.tag) == "Relationship" and e.get("Id") == relationship),
                  None)
    if relationship is None or target is None:
        return None
    return target.lstrip("/") if target.startswith("/") else posixpath.normpath("xl/" + target)


def _xlsx_merged_ranges(data: bytes, sheet: str) -> list[tuple[int, int, int, int]]:
    """(first row, first column, last row, last column), 0-based, of every merged range of the
    worksheet named ``sheet``. Its XML is read a mebibyte at a time: the ranges follow the
    cells, which may be hundreds of megabytes."""
    ranges = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        part = _xlsx_sheet_part(archive, sheet)
        if part is None:
            return []
        with archive.open(part) as stream:
            pending = b""
            while True:
                chunk = stream.read(1 << 20)
                text = pending + chunk
                # An element that starts in the last bytes may end in the next chunk.
                cut = max(0, len(text) - _MERGE_CELL_BYTES) if chunk else len(text)
                for m in _MERGE_CELL.finditer(text):
                    if m.start() >= cut:
                        break
                    first = (int(m.group(2)) - 1, _column_number(m.group(1)))
                    last = ((int(m.group(4)) - 1, _column_number(m.group(3)))
                            if m.group(3) else first)
                    ranges.append((*first, *last))
                if not chunk:
                    return ranges
                pending = text[cut:]


def _xls_merged_ranges(data: bytes, sheet: str) -> list[tuple[int, int, int, int]]:
    """:func:`_xlsx_merged_ranges` of a .xls (BIFF) workbook, from python-calamine (.xls
    workbooks hold at most 65,536 rows, so reading the sheet again costs little)."""
    import python_calamine

    book = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    merged = book.get_sheet_by_name(sheet).merged_cell_ranges or []
    return [(r0, c0, r1, c1) for (r0, c0), (r1, c1) in merged]


def _long_numbers_as_kept(reader: fastexcel.ExcelReader, sheet: str, grid: pl.DataFrame
                          ) -> pl.DataFrame:
    """``grid`` (the sheet as text) with every number cell of more than 15 digits written as
    Excel shows it in scientific notation (``9.13100006073574E+17``), not as fastexcel writes
    the number out (``913100006073574016``).

    Excel keeps 15 significant digits of a number: an 18-digit USCC or a 19-digit complaint
    number typed into a number cell has lost its last digits, and the digits fastexcel writes
    out after the 15th were never typed by anyone. Written out they can even pass a code's
    check characters and name someone else; in scientific notation they are what the cell
    holds, and :mod:`registry.ingest.validation` refuses them as cut short. A text cell of the
    same digits is left as it is: which cells are numbers is read again, for the columns
    holding such digits only (their cells as booleans: fastexcel gives a number cell a value
    and a text cell none)."""
    long_digits = pl.col(grid.columns).str.contains(_LONG_DIGITS).any()
    found = grid.select(long_digits).row(0) if grid.height else ()
    columns = [i for i, hit in enumerate(found) if hit]
    if not columns:
        return grid
    cells, _ = reader.load_sheet(sheet, header_row=None, skip_rows=0, use_columns=columns,
                                 dtypes=dict.fromkeys(columns, "boolean")
                                 ).to_arrow_with_errors()
    if cells.num_rows != grid.height:
        raise rj.FileRejected(rj.WORKBOOK_DAMAGED)
    written = []
    for i, number in zip(columns, cells.columns, strict=True):
        text = grid.get_column(grid.columns[i])
        cut = (pl.Series(number).is_not_null() & text.str.contains(_LONG_DIGITS)).fill_null(False)
        at = cut.arg_true()
        if at.len():
            kept = [repr(float(digits)).upper() for digits in text.gather(at)]
            written.append(text.clone().scatter(at, pl.Series(kept, dtype=pl.String)))
    return grid.with_columns(written) if written else grid


def _text_table(data: bytes, known_headers: Collection[str], limits: Limits) -> UploadTable:
    utf8, encoding, verified = _as_utf8(data)
    # A NUL is valid UTF-8 and polars keeps it inside a value ("SH\0-1" would be a filing id),
    # but no spreadsheet or text export writes one: the file is damaged or not text.
    # (UTF-16 text has NULs only before it is converted, which _as_utf8 has done.)
    nul = utf8.find(b"\0")
    if nul >= 0:
        raise rj.FileRejected(rj.FILE_UNREADABLE, f"a NUL byte at byte {nul:,}: not a text file")
    first = _FIRST_VISIBLE.match(utf8)
    if first and first.group(1) in (b"{", b"["):
        return _jsonl_table(utf8 if verified else _as_utf8(data, verify=True)[0], encoding,
                            limits)
    try:
        return _csv_table(utf8, encoding, known_headers, limits)
    except _NotUtf8:
        # The head was UTF-8 but a later byte is not: decide on the whole file instead.
        utf8, encoding, _ = _as_utf8(data, verify=True)
        return _csv_table(utf8, encoding, known_headers, limits)


class _NotUtf8(Exception):
    """polars met invalid UTF-8 past the sample that looked like UTF-8."""


def _as_utf8(data: bytes, *, verify: bool = False) -> tuple[bytes, str, bool]:
    """``data`` as UTF-8 bytes, the encoding it arrived in, and whether every byte was checked.

    A file whose first 64 KiB are UTF-8 is passed on unchecked (polars validates UTF-8 as it
    parses, and a failure there comes back through :class:`_NotUtf8`): decoding a 200 MB file
    in Python only to throw the text away would cost more than parsing it. ``verify`` decodes
    everything, and is what the fallback uses. Any other encoding is told from the first
    64 KiB (:func:`_legacy_encoding`) and the whole file is then decoded strictly: a byte that
    does not fit refuses the file, naming its line and byte."""
    bom = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    data, encoding = data[bom:], "utf-8-sig" if bom else "utf-8"
    head_is_utf8 = _sample_text(data, "utf-8") is not None
    if head_is_utf8 and not verify:
        return data, encoding, False
    start = 0
    if head_is_utf8 or bom:
        try:
            data.decode("utf-8")
            return data, encoding, True
        except UnicodeDecodeError as exc:
            if bom or not data[: exc.start].isascii():
                raise _undecodable(data, exc, "utf-8", bom) from None
            # Plain ASCII up to there (an English header, codes and dates): no sign of UTF-8
            # at all. The text from that line on tells the encoding.
            start = data.rfind(b"\n", 0, exc.start) + 1
    encoding = _legacy_encoding(data[start:])
    try:
        return data.decode(encoding).encode("utf-8"), encoding, True
    except UnicodeDecodeError as exc:
        raise _undecodable(data, exc, encoding) from None


def _sample_text(data: bytes, encoding: str) -> tuple[str, int] | None:
    """The first 64 KiB of ``data`` decoded strictly as ``encoding``, and the byte where the
    decoded text ends: before a character that the 64 KiB cut splits in two (its other half
    lies past the sample). None when those bytes are not ``encoding``."""
    decoder = codecs.getincrementaldecoder(encoding)()
    sample = data[:_SAMPLE_BYTES]
    try:
        text = decoder.decode(sample, final=False)
    except UnicodeDecodeError:
        return None
    return text, len(sample) - len(decoder.getstate()[0])


def _legacy_encoding(data: bytes) -> str:
    """The encoding of text that is not UTF-8, told from its first 64 KiB.

    GB18030 (of which GBK and GB2312 are subsets) when those bytes decode as GB18030 and read
    as Chinese (:func:`_reads_as_chinese`); charset-normalizer is not asked then, because the
    commas, √ and × of a CSV look like noise to it and it often finds nothing at all.
    Otherwise charset-normalizer picks among :data:`_CANDIDATE_ENCODINGS` (Big5, UTF-16, or
    GB18030 in Traditional characters), from a sample that ends on a whole character.
    Raises ENCODING_UNDECODABLE when it finds none."""
    head = _sample_text(data, "gb18030")
    if head is not None and _reads_as_chinese(head[0]):
        return "gb18030"
    # charset-normalizer finds no encoding at all in a sample whose cut splits a character.
    # Big5 pairs a lead byte of 0x81 or more with the byte after it, as GB18030 does, so the
    # GB18030 boundary is tried first; then the cut itself and up to three bytes earlier
    # (UTF-16 has 2- and 4-byte characters).
    cuts = dict.fromkeys(([head[1]] if head is not None else [])
                         + [min(len(data), end) for end in range(_SAMPLE_BYTES,
                                                                 _SAMPLE_BYTES - 4, -1)])
    best = None
    for end in cuts:
        best = charset_normalizer.from_bytes(data[:end], cp_isolation=_CANDIDATE_ENCODINGS).best()
        if best is not None:
            break
    if best is None:
        raise rj.FileRejected(rj.ENCODING_UNDECODABLE, "not UTF-8, GB18030 or Big5")
    # GB2312 and GBK are subsets of GB18030: decode with the superset.
    return "gb18030" if best.encoding in ("gb2312", "gbk", "gb18030") else best.encoding


def _reads_as_chinese(text: str) -> bool:
    """Whether nearly all of the non-ASCII characters of ``text`` are in GB2312: the 6,763
    everyday simplified hanzi, full-width punctuation and symbols such as √ and ×.

    A council's list in GB18030 scores over 99%, a few names in Traditional characters
    included. Big5, Shift-JIS or UTF-8 bytes, where they decode as GB18030 at all, decode
    mostly to rare GBK extension characters outside GB2312 (Big5 text scores under 50%)."""
    wide = _ASCII_RUNS.sub("", text)
    # Every GB2312 character is two bytes: half the bytes encoded count the characters in it.
    in_gb2312 = len(wide.encode("gb2312", errors="ignore")) // 2
    return bool(wide) and in_gb2312 >= _GB2312_SHARE * len(wide)


def _undecodable(data: bytes, exc: UnicodeDecodeError, encoding: str, offset: int = 0
                 ) -> rj.FileRejected:
    """ENCODING_UNDECODABLE naming the line and the byte of ``data`` where decoding it as
    ``encoding`` failed (``offset``: bytes before ``data`` in the file, a BOM)."""
    line = data.count(b"\n", 0, exc.start) + 1
    name = encoding.upper().replace("_", "-")
    return rj.FileRejected(
        rj.ENCODING_UNDECODABLE,
        f"line {line:,}, byte {exc.start + offset:,} is not valid {name}",
    )


def _csv_table(
    utf8: bytes, encoding: str, known_headers: Collection[str], limits: Limits
) -> UploadTable:
    head_text = utf8[:_SAMPLE_BYTES].decode("utf-8", errors="ignore")
    head_lines = head_text.splitlines()[: HEADER_SEARCH_ROWS + 1]
    delimiter = _delimiter(head_lines)
    head_records = list(csv.reader(head_lines[:HEADER_SEARCH_ROWS], delimiter=delimiter))
    header_at = _header_position(head_records, known_headers)
    header = head_records[header_at]
    if len(header) > limits.max_columns:
        raise rj.FileRejected(rj.TOO_MANY_COLUMNS, f"{len(header)} > {limits.max_columns}")
    try:
        frame = pl.read_csv(
            io.BytesIO(utf8),
            separator=delimiter,
            has_header=True,
            skip_rows=header_at,
            infer_schema=False,
        )
    except pl.exceptions.NoDataError:
        raise rj.FileRejected(rj.NO_DATA_ROWS) from None
    except pl.exceptions.PolarsError as exc:
        message = str(exc).splitlines()[0]
        if "utf-8" in message or "utf8" in message:
            raise _NotUtf8 from None
        raise rj.FileRejected(rj.CSV_MALFORMED, message) from None
    if frame.width != len(header):
        raise rj.FileRejected(
            rj.CSV_MALFORMED, f"header has {len(header)} fields but the data has {frame.width}"
        )
    frame = frame.rename({c: f"c{i}" for i, c in enumerate(frame.columns)})
    # The header is CSV record header_at + 1; data record i (0-based) is header_at + 2 + i.
    rows = frame.with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) + header_at + 2).alias(SOURCE_ROW)
    )
    rows, notes = _without_blanks_and_footer(rows)
    return UploadTable(format="csv", header=header, rows=rows, encoding=encoding, notes=notes)


def _delimiter(lines: list[str]) -> str:
    """The candidate that splits some line of the head into the most fields.

    Title rows have no delimiter at all; the header row has the most, so the maximum per line
    (not the total) decides."""
    best, best_count = ",", 0
    for candidate in _DELIMITERS:
        count = max((len(next(csv.reader([line], delimiter=candidate), [])) for line in lines),
                    default=0)
        if count > best_count:
            best, best_count = candidate, count
    return best


def _jsonl_table(utf8: bytes, encoding: str, limits: Limits) -> UploadTable:
    try:
        # The schema first: a record with 300,000 keys takes polars a minute and gigabytes to
        # build as a frame, but well under a second to infer, and is refused on its width.
        schema = pl.scan_ndjson(io.BytesIO(utf8), infer_schema_length=None).collect_schema()
        if len(schema) > limits.max_columns:
            raise rj.FileRejected(rj.TOO_MANY_COLUMNS, f"{len(schema)} > {limits.max_columns}")
        frame = pl.read_ndjson(io.BytesIO(utf8), schema=schema)
    except pl.exceptions.PolarsError as exc:
        raise rj.FileRejected(
            rj.FILE_UNREADABLE, f"not valid JSON Lines ({str(exc).splitlines()[0]})"
        ) from None
    lines = pl.Series(utf8.decode("utf-8").split("\n"))
    line_numbers = (lines.str.strip_chars() != "").arg_true() + 1
    if line_numbers.len() != frame.height:
        raise rj.FileRejected(rj.FILE_UNREADABLE, "a JSON Lines record spans several lines")
    header = frame.columns
    rows = _as_text(frame).with_columns(line_numbers.cast(pl.Int64).alias(SOURCE_ROW))
    rows, _ = _without_blanks_and_footer(rows, footer=False)
    return UploadTable(format="jsonl", header=header, rows=rows, encoding=encoding)


def _parquet_table(data: bytes) -> UploadTable:
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # polars and pyarrow raise several types for damaged files
        raise rj.FileRejected(rj.FILE_UNREADABLE, f"damaged Parquet ({exc})") from None
    header = frame.columns
    rows = _as_text(frame).with_columns(
        pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias(SOURCE_ROW)
    )
    rows, _ = _without_blanks_and_footer(rows, footer=False)
    return UploadTable(format="parquet", header=header, rows=rows)


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as String, named ``c{i}``. Lists become 、-joined text (which the list
    columns split again); structs become JSON text, which no contract column accepts."""
    out = []
    for i, (name, dtype) in enumerate(frame.schema.items()):
        col = pl.col(name)
        if isinstance(dtype, pl.List):
            col = col.list.eval(pl.element().cast(pl.String)).list.join("、")
        elif isinstance(dtype, pl.Struct):
            col = col.struct.json_encode()
        else:
            col = col.cast(pl.String)
        out.append(col.alias(f"c{i}"))
    return frame.select(out)


def _header_score(records: list[list[str | None]] | list[tuple], known: Collection[str]
                  ) -> tuple[int, int]:
    """(index, score) of the record that names the most known columns (the first one on a
    tie) among the first rows; (-1, 1) when none names at least two."""
    best_at, best_score = -1, 1
    for at, record in enumerate(records[:HEADER_SEARCH_ROWS]):
        score = sum(1 for cell in record
                    if cell and known_header_key(str(cell), known) is not None)
        if score > best_score:
            best_at, best_score = at, score
    return best_at, best_score


def _header_position(records: list[list[str | None]] | list[tuple], known: Collection[str]) -> int:
    """Index of the record that names the most known columns (the first one on a tie).

    Raises NO_HEADER when no record among the first rows names at least two."""
    best_at, _ = _header_score(records, known)
    if best_at < 0:
        raise rj.FileRejected(rj.NO_HEADER, HEADER_SEARCH_ROWS)
    return best_at


def _blank_rows(grid: pl.DataFrame) -> pl.Series:
    """True for rows whose cells are all empty or whitespace."""
    cells = [c for c in grid.columns if c != SOURCE_ROW]
    # Narrow the candidates column by column with a cheap test (null or short), so that a
    # real file, whose first column is filled, costs one pass over one column; the exact
    # test then runs on the few rows left.
    candidates = pl.int_range(grid.height, dtype=pl.UInt32, eager=True)
    for c in cells:
        cells_here = grid[c] if candidates.len() == grid.height else grid[c].gather(candidates)
        candidates = candidates.filter(
            cells_here.is_null() | (cells_here.str.len_bytes() <= 8)
        )
        if candidates.is_empty():
            return pl.repeat(False, grid.height, dtype=pl.Boolean, eager=True)
    exact = grid[candidates].select(
        pl.all_horizontal(pl.col(c).str.strip_chars().fill_null("") == "" for c in cells)
    ).to_series()
    blank = pl.repeat(False, grid.height, dtype=pl.Boolean, eager=True)
    return blank.scatter(candidates, exact)


def _without_blanks_and_footer(
    rows: pl.DataFrame, *, footer: bool = True
) -> tuple[pl.DataFrame, list[SkippedNote]]:
    """Drop blank rows, and (for spreadsheets and CSVs) the trailing block of notes.

    The footer starts at the first row that begins like a note and after which every row is
    sparse (at most two non-empty cells): a "备注" typed into one data row is not a footer.
    Only the last rows are searched: a footer is a few lines, not a second table."""
    blank = _blank_rows(rows)
    if blank.any():
        rows = rows.filter(~blank)
    if not footer or rows.is_empty():
        return rows, []
    tail_start = max(0, rows.height - FOOTER_SEARCH_ROWS)
    tail = rows.slice(tail_start)
    cells = [c for c in rows.columns if c != SOURCE_ROW]
    non_empty = [pl.col(c).str.strip_chars().fill_null("") != "" for c in cells]
    first_text = pl.coalesce(
        pl.when(pl.col(c).str.strip_chars() != "").then(pl.col(c)) for c in cells
    )
    marks = tail.select(
        pl.col(SOURCE_ROW),
        first_text.alias("first"),
        first_text.str.contains(_NOTE_START).fill_null(False).alias("note"),
        (pl.sum_horizontal(non_empty) <= _NOTE_MAX_CELLS)
        .reverse()
        .cum_min()
        .reverse()
        .alias("sparse_to_end"),
    )
    starts = marks.with_row_index("i").filter(pl.col("note") & pl.col("sparse_to_end"))
    if starts.is_empty():
        return rows, []
    start = starts["i"][0]
    notes = [
        SkippedNote(row=row, starts_with=(text or "")[:12])
        for row, text in marks.slice(start).select(SOURCE_ROW, "first").iter_rows()
    ]
    return rows.slice(0, tail_start + start), notes


def _check_limits(table: UploadTable, limits: Limits) -> None:
    rows, width = table.rows.height, len(table.header)
    if width > limits.max_columns:
        raise rj.FileRejected(rj.TOO_MANY_COLUMNS, f"{width} > {limits.max_columns}")
    if rows > limits.max_rows:
        raise rj.FileRejected(rj.TOO_MANY_ROWS, f"{rows:,} > {limits.max_rows:,}")
    if rows * width > limits.max_cells:
        raise rj.FileRejected(rj.TOO_MANY_CELLS, f"{rows * width:,} > {limits.max_cells:,}")
    cells = [c for c in table.rows.columns if c != SOURCE_ROW]
    if not cells:
        return
    # A cell has at least as many bytes as characters: count characters only past that bound.
    longest = table.rows.select(pl.max_horizontal(pl.col(c).str.len_bytes().max() for c in cells))
    if (longest.item() or 0) <= limits.max_cell_chars:
        return
    lengths = table.rows.select(
        pl.max_horizontal(pl.col(c).str.len_chars() for c in cells).alias("n"), SOURCE_ROW
    )
    too_long = lengths.filter(pl.col("n") > limits.max_cell_chars)
    if not too_long.is_empty():
        row = too_long[SOURCE_ROW][0]
        raise rj.FileRejected(
            rj.CELL_TOO_LONG, f"row {row}: more than {limits.max_cell_chars:,} characters"
        )
