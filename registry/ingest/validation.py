"""Which rows of an upload are accepted, which are quarantined, and why.

Every row rule a contract implies is built in one place, :func:`contract_rules`, as a polars
expression that is True where a row breaks it. All rules run in one vectorised pass and every
broken rule is reported (a row can have several errors). The accepted rows are then checked
against the pandera-polars schema of staged data built from the same contract
(:func:`staged_schema`): dtypes, nullability, enum values, ranges and key uniqueness are what
the registry build relies on, so a normalisation bug stops the batch instead of reaching it.

:func:`checked_upload` is the whole pure path from bytes to accepted/quarantined frames. The
``registry check`` command and ingestion both call it; only ingestion touches storage.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from registry.config import pii
from registry.config.contracts import (
    LINEAGE_SCHEMA,
    ColumnSpec,
    Contract,
    Vocabulary,
    header_key,
    known_header_key,
    within_region,
)
from registry.config.regions import RegionConfig
from registry.ingest import rejections as rj
from registry.ingest.normalize import (
    REGION_SUFFIX,
    city_lookup,
    gives_date_ranges,
    normalized,
    split_date_ranges,
)
from registry.ingest.readers import refusal_for_name, upload_table
from registry.ingest.tables import (
    SOURCE_ROW,
    FilledCells,
    Limits,
    SkippedNote,
    UploadTable,
    filled_cells_as_dicts,
)
from registry.ingest.uscc import uscc_is_valid

if TYPE_CHECKING:
    import pandera.polars as pa

TEXT_SUFFIX = "__text"
HIDDEN_VALUE = "(已隐藏 hidden)"
ERRORS_COLUMN = "_errors"

_PARSE_CODES = {
    "date": rj.DATE_INVALID,
    "boolean": rj.BOOLEAN_INVALID,
    "enum": rj.ENUM_INVALID,
    "float": rj.NUMBER_INVALID,
    "phone": rj.PHONE_INVALID,
    "city": rj.CITY_UNKNOWN,
}
# Columns a clerk types free text into. A phone or resident ID number there is personal data in
# the wrong place (PII columns are the only place for it): PII_IN_TEXT.
_FREE_TEXT = ("string", "list")
# A number in scientific notation (9.13100006073574E+17), where a code belongs: a spreadsheet
# kept the column as numbers and cut the code to 15 digits. A CSV export writes it so, and the
# reader writes a workbook's number cells so (registry.ingest.readers._long_numbers_as_kept).
_SCIENTIFIC = r"^[+-]?\d+(\.\d+)?[eE][+-]?\d+$"


@dataclass(frozen=True)
class Rule:
    """One row rule: ``failed`` is True where a row breaks it."""

    code: str
    column: str
    label: str
    failed: pl.Expr
    value: pl.Expr
    detail: str | pl.Expr = ""  # per row when an expression (a row number to name)


def _text(name: str) -> pl.Expr:
    return pl.col(name + TEXT_SUFFIX)


def _shown(col: ColumnSpec) -> pl.Expr:
    """A cell as receipts and quarantine show it. They never echo PII, not even back to the
    council that sent it: a PII column is hidden, a personal number in free text masked."""
    if col.pii:
        return pl.lit(HIDDEN_VALUE)
    text = _text(col.name)
    if col.dtype in _FREE_TEXT:
        return pl.when(pii.looks_personal(text)).then(pii.masked(text)).otherwise(text)
    return text


def _is_code(col: ColumnSpec, contract: Contract) -> bool:
    """A column of codes (a USCC, or a part of the natural key) that a spreadsheet's number
    format can cut short."""
    return col.dtype == "uscc" or col.name in contract.natural_key


def _shortened(col: ColumnSpec) -> pl.Expr:
    return _text(col.name).str.contains(_SCIENTIFIC)


def _column_rules(
    col: ColumnSpec, contract: Contract, region: str, region_label: str, today: date
) -> list[Rule]:
    text, value, shown = _text(col.name), pl.col(col.name), _shown(col)
    present = text.is_not_null()
    rules: list[Rule] = []

    def rule(code: str, failed: pl.Expr, detail: str = "") -> None:
        rules.append(Rule(code, col.name, col.label, failed, shown, detail))

    if col.required:
        rule(rj.REQUIRED_MISSING, text.is_null())
    if col.required_when:
        other = contract.by_name[col.required_when.column]
        rule(
            rj.CONDITIONAL_REQUIRED_MISSING,
            text.is_null() & (pl.col(other.name) == col.required_when.equals),
            f"{other.label} = {col.required_when.equals}",
        )
    if col.dtype in _PARSE_CODES:
        detail = ""
        if col.dtype == "enum":
            detail = "; ".join(f"{k} ({'/'.join(v)})" for k, v in (col.values or {}).items())
        rule(_PARSE_CODES[col.dtype], present & value.is_null(), detail)
    shortened = pl.lit(False)
    if _is_code(col, contract):
        shortened = _shortened(col)
        rule(rj.NUMBER_SHORTENED, present & shortened)
    if col.dtype == "uscc":
        rule(rj.USCC_INVALID, present & ~uscc_is_valid(value) & ~shortened)
    if col.dtype in ("list", "country_list"):
        rule(rj.LIST_EMPTY, present & (value.list.len() == 0))
    if col.dtype == "country_list":
        rule(rj.COUNTRY_UNKNOWN, value.list.eval(pl.element().is_null()).list.any())
    if col.dtype == "city":
        rule(rj.CITY_NOT_IN_REGION, pl.col(col.name + REGION_SUFFIX) != region, region_label)
    if col.max_length:
        rule(rj.TEXT_TOO_LONG, text.str.len_chars() > col.max_length, str(col.max_length))
    if col.min is not None or col.max is not None:
        lo = "-∞" if col.min is None else f"{col.min:g}"
        hi = "+∞" if col.max is None else f"{col.max:g}"
        below = value < col.min if col.min is not None else pl.lit(False)
        above = value > col.max if col.max is not None else pl.lit(False)
        rule(rj.VALUE_OUT_OF_RANGE, below | above, f"[{lo}, {hi}]")
    if col.not_before:
        other = contract.by_name[col.not_before]
        rule(rj.DATE_ORDER_INVALID, value < pl.col(other.name), other.label)
    if col.not_future:
        rule(rj.DATE_IN_FUTURE, value > pl.lit(today))
    if col.dtype in _FREE_TEXT and not col.pii:
        rule(rj.PII_IN_TEXT, pii.looks_personal(text))
    return rules


def _copy_rules(contract: Contract) -> list[Rule]:
    """The rules for rows of one file that share a natural key (copies).

    - Copies that agree in every column are one row: the first is read, each other one is
      refused as ``DUPLICATE_ROW`` naming it (a row pasted twice).
    - Copies that disagree, when the contract has a column that settles copies
      (:attr:`~registry.config.contracts.Contract.copies_settled_by`) and one of them holds
      one of its values: the copy with the first such value (the last in the file among equals)
      is read, the others refused as ``DUPLICATE_KEY_SETTLED`` naming it. A clerk who appends
      X's 撤销 under the year's 有效 row means the revocation; one who appends 有效 under 撤销
      to reinstate X is read as revoked until the file keeps one row, which is the safe way to
      be wrong, and the receipt says so.
    - Any other copies are all refused as ``DUPLICATE_KEY``: the file does not say which one
      the council meant.

    A key cut short by a spreadsheet is refused as such; its copies are not copies of what the
    council typed."""
    keys = [contract.by_name[k] for k in within_region(contract.natural_key)]
    if not keys:
        return []
    complete = pl.all_horizontal(pl.col(k.name).is_not_null() & ~_shortened(k) for k in keys)
    # (A struct of one column hashes slower than the column.)
    key = pl.col(keys[0].name) if len(keys) == 1 else pl.struct(k.name for k in keys)
    copy = complete & key.is_duplicated()
    over = [k.name for k in keys]
    # What the council wrote in every column (PII included: two complaints by different
    # consumers are not one complaint), hashed: copies agree when their hashes do.
    written = pl.struct(_text(c.name) for c in contract.columns).hash()
    agree = written.n_unique().over(over) == 1
    # Rows are told apart by their row numbers, which are unique and in file order.
    row = pl.col(SOURCE_ROW)
    first_row = row.min().over(over)
    shown = pl.concat_str([_shown(k) for k in keys], separator=" / ")
    column, label = "+".join(k.name for k in keys), " + ".join(k.label for k in keys)
    rules = [Rule(rj.DUPLICATE_ROW, column, label,
                  copy & agree & (row != first_row), shown, first_row.cast(pl.String))]
    settling = contract.copies_settled_by
    unsettled = copy & ~agree
    if settling is not None:
        rank = pl.col(settling.name).replace_strict(
            {v: i for i, v in enumerate(settling.settles_copies)}, default=None,
            return_dtype=pl.Int32)
        least = rank.min().over(over)
        read_row = pl.when(rank == rank.min()).then(row).max().over(over)
        settled = unsettled & least.is_not_null()
        rules.append(Rule(rj.DUPLICATE_KEY_SETTLED, column, label,
                          settled & (row != read_row), shown, read_row.cast(pl.String)))
        unsettled = unsettled & least.is_null()
    rules.append(Rule(rj.DUPLICATE_KEY, column, label, unsettled, shown))
    return rules


def contract_rules(
    contract: Contract, *, region: str, region_label: str, today: date
) -> list[Rule]:
    """Every row rule of ``contract`` for an upload by ``region``, evaluated against a frame
    holding each column's text (``{name}__text``) beside its typed value (``{name}``).

    ``today`` is the date against which "not in the future" is judged."""
    rules: list[Rule] = []
    for col in contract.columns:
        rules.extend(_column_rules(col, contract, region, region_label, today))
    rules.extend(_copy_rules(contract))
    return rules


def row_errors(checked: pl.DataFrame, rules: list[Rule]) -> pl.DataFrame:
    """One row per (row, broken rule): ``_row`` (position in ``checked``), ``row`` (the clerk's
    row number), ``column``, ``label``, ``code``, ``value``, ``detail``. All rules run in one
    pass; only the rows that break something are looked at twice. A rule's ``detail``, when it
    is an expression, is evaluated in that pass, over every row (it may look at other rows:
    the row a copy was read from)."""
    details = {i: r.detail for i, r in enumerate(rules) if isinstance(r.detail, pl.Expr)}
    flags = checked.select(
        pl.int_range(pl.len(), dtype=pl.Int64).alias("_row"),
        *[r.failed.fill_null(False).alias(f"_r{i}") for i, r in enumerate(rules)],
        *[detail.cast(pl.String).alias(f"_d{i}") for i, detail in details.items()],
    )
    flag_names = [f"_r{i}" for i in range(len(rules))]
    failing = pl.concat([checked, flags], how="horizontal").filter(
        pl.any_horizontal(flag_names)
    )
    schema = {
        "_row": pl.Int64, "row": pl.Int64, "column": pl.String, "label": pl.String,
        "code": pl.String, "value": pl.String, "detail": pl.String,
    }
    if failing.is_empty():
        return pl.DataFrame(schema=schema)
    parts = [
        failing.filter(pl.col(f"_r{i}")).select(
            pl.col("_row"),
            pl.col(SOURCE_ROW).alias("row"),
            pl.lit(r.column).alias("column"),
            pl.lit(r.label).alias("label"),
            pl.lit(r.code).alias("code"),
            r.value.cast(pl.String).alias("value"),
            (pl.col(f"_d{i}") if i in details else pl.lit(r.detail)).alias("detail"),
        )
        for i, r in enumerate(rules)
    ]
    return pl.concat(parts).cast(schema).sort("_row", "column", "code")


# --------------------------------------------------------------------------------------------
# pandera: the schema of staged data


def load_pandera() -> None:
    """Import pandera's polars API, as the first :func:`staged_schema` would: for a caller
    with idle time before it."""
    from registry._compat import pandera as pandera_internals

    pandera_internals.imported()


def staged_schema(contract: Contract) -> pa.DataFrameSchema:
    """The pandera-polars schema every staged batch of ``contract`` satisfies: its dtypes,
    required columns non-null, enum values canonical, ranges, USCC length, and the natural key
    unique within the batch.

    pandera (and with it pandas) is imported here, when a batch is about to be staged: a run
    with nothing to ingest, and ``registry check``, never load it (unless they wait for a
    temporary Prefect server meanwhile: :func:`load_pandera`), with hypothesis hidden from it
    (:mod:`registry._compat.pandera`)."""
    from registry._compat import pandera as pandera_internals

    pa = pandera_internals.imported()

    columns: dict[str, pa.Column] = {}
    for name, dtype in contract.staged_schema().items():
        col = contract.by_name.get(name)
        checks: list[pa.Check] = []
        if col is not None and col.values:
            checks.append(pa.Check.isin(list(col.values)))
        if col is not None and col.min is not None:
            checks.append(pa.Check.ge(col.min))
        if col is not None and col.max is not None:
            checks.append(pa.Check.le(col.max))
        if col is not None and col.dtype == "uscc":
            checks.append(pa.Check.str_length(18, 18))
        # Region and lineage are always set; a matching key is null when its name is.
        nullable = not col.required if col else name not in ("region", *LINEAGE_SCHEMA)
        columns[name] = pa.Column(dtype, checks=checks, nullable=nullable)
    return pa.DataFrameSchema(
        columns,
        strict=True,
        ordered=True,
        unique=list(contract.natural_key),
        name=f"staged {contract.name} v{contract.version}",
    )


# --------------------------------------------------------------------------------------------
# the whole pure path


@dataclass(frozen=True)
class UploadCheck:
    """What an upload holds and what becomes of each of its rows.

    ``accepted``: typed rows in the staged column order, without lineage.
    ``quarantined``: every rejected row as receipts show it (every contract column but the PII
    ones, personal numbers in free text masked; ``region``, ``_source_row``) with ``_errors``, a
    list of {column, code, value, message_zh, message_en}.
    ``errors``: one row per (row, error), for receipts and ``registry check``.
    ``file_errors`` lists every reason the whole file is refused (the frames are then empty);
    ``warnings`` are the batch-gate rules the file will trip
    (:func:`registry.ingest.pipeline.checked_file` fills them, as dicts with ``code``,
    ``column``, ``message_zh`` and ``message_en``)."""

    file: str
    region: str
    dataset: str
    contract_version: str
    rows_in: int
    accepted: pl.DataFrame
    quarantined: pl.DataFrame
    errors: pl.DataFrame
    file_errors: tuple[rj.FileRejected, ...] = ()
    format: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    notes: list[SkippedNote] = field(default_factory=list)
    filled: list[FilledCells] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    warnings: tuple[dict[str, str], ...] = ()

    @property
    def rejected(self) -> int:
        return self.quarantined.height

    @property
    def file_error(self) -> rj.FileRejected | None:
        """The first reason the whole file is refused, or None when it was read."""
        return self.file_errors[0] if self.file_errors else None


def header_columns(table: UploadTable, contract: Contract) -> tuple[dict[str, str], list[str]]:
    """Map the table's ``c{i}`` columns to contract column names, and list ignored headers.

    Every header problem is found in one pass and raised together as
    :class:`~registry.ingest.rejections.FileProblems`, in the file's column order, then the
    missing columns in the contract's: a header cell over a data column that is blank
    (BLANK_HEADER), a column not in the contract nor on its ignore list (UNKNOWN_COLUMN, with
    the accepted header it may have been meant as), two headers naming one column
    (DUPLICATE_COLUMN), a required column missing (MISSING_COLUMN, with the file's unknown
    header that may be it), unless a column the file has gives it as a range's start in some
    of its cells (``range_start``)."""
    index = contract.header_index()
    past_note = {key for key, name in index.items()
                 if name is None or not contract.by_name[name].note_may_change_meaning}
    mapping: dict[str, str] = {}
    ignored: list[str] = []
    # (column position, problem): told in the file's column order.
    found: list[tuple[int, rj.FileRejected]] = []
    unknown: dict[int, str] = {}
    empty_columns = set()
    blank_positions = [i for i, cell in enumerate(table.header) if not str(cell or "").strip()]
    if blank_positions:
        counts = table.rows.select(
            pl.col(f"c{i}").str.strip_chars().replace("", None).count() for i in blank_positions
        ).row(0)
        for i, count in zip(blank_positions, counts, strict=True):
            if count:
                found.append((i, rj.FileRejected(rj.BLANK_HEADER, i + 1)))
            empty_columns.add(i)
    for i, cell in enumerate(table.header):
        if i in empty_columns:
            continue
        key = known_header_key(str(cell), index, past_note)
        if key is None:
            unknown[i] = str(cell).strip()
            continue
        name = index[key]
        if name is None:
            ignored.append(str(cell).strip())
        elif name in mapping.values():
            found.append((i, rj.FileRejected(rj.DUPLICATE_COLUMN, contract.by_name[name].label)))
        else:
            mapping[f"c{i}"] = name
    meant = {i: _meant_column(i, text, mapping, contract) for i, text in unknown.items()}
    for i, text in unknown.items():
        found.append((i, rj.FileRejected(rj.UNKNOWN_COLUMN, text,
                                         did_you_mean=meant[i].label_zh if meant[i] else None)))
    problems = [problem for _, problem in sorted(found, key=lambda f: f[0])]
    for name in contract.required_columns:
        if name in mapping.values() or _given_as_range(name, table, mapping, contract):
            continue
        maybe = next((unknown[i] for i, col in meant.items() if col and col.name == name), None)
        problems.append(rj.FileRejected(rj.MISSING_COLUMN, contract.by_name[name].label,
                                        did_you_mean=maybe))
    if problems:
        raise rj.FileProblems(problems)
    return mapping, ignored


def _given_as_range(name: str, table: UploadTable, mapping: Mapping[str, str],
                    contract: Contract) -> bool:
    """Whether some cells of a column of the file give column ``name`` as a range's start
    (``range_start``: 有效期 2024.01.01-2027.12.31; :func:`split_date_ranges`). A file none of
    whose cells does lacks the column."""
    ranged = contract.range_of(name)
    column = next((c for c, n in mapping.items() if ranged is not None and n == ranged.name),
                  None)
    return column is not None and gives_date_ranges(table.rows[column])


# How close (difflib's ratio, 0..1) an unknown header must be to an accepted one to be offered.
_CLOSE_HEADER = 0.6


def _meant_column(at: int, text: str, mapping: dict[str, str], contract: Contract
                  ) -> ColumnSpec | None:
    """The contract column an unknown header at position ``at`` was probably meant as.

    First the accepted header closest in spelling (difflib on the matching keys, so Chinese
    compares character by character). Failing that, the template's order: a column the file
    lacks that the template puts right after the column to the left of this one (营业执照号
    after 备案编号, where the template has 统一社会信用代码), when that column is required.
    None when neither says anything."""
    index = {k: v for k, v in contract.header_index().items() if v is not None}
    close = difflib.get_close_matches(header_key(text), list(index), n=1, cutoff=_CLOSE_HEADER)
    if close:
        return contract.by_name[index[close[0]]]
    left = next((mapping[f"c{i}"] for i in range(at - 1, -1, -1) if f"c{i}" in mapping), None)
    names = [c.name for c in contract.columns]
    after = names.index(left) + 1 if left else 0
    following = names[after] if after < len(names) else None
    if following not in contract.required_columns or following in mapping.values():
        return None
    return contract.by_name[following]


def _error_structs(errors: pl.DataFrame) -> pl.DataFrame:
    return errors.group_by("_row", maintain_order=True).agg(
        pl.struct("column", "code", "value", "message_zh", "message_en").alias(ERRORS_COLUMN)
    )


def _empty_check(file: str, region: str, contract: Contract,
                 errors: tuple[rj.FileRejected, ...], table: UploadTable | None) -> UploadCheck:
    return UploadCheck(
        file=file,
        region=region,
        dataset=contract.name,
        contract_version=contract.version,
        rows_in=0,
        accepted=pl.DataFrame(),
        quarantined=pl.DataFrame(),
        errors=pl.DataFrame(),
        file_errors=errors,
        format=table.format if table else None,
        encoding=table.encoding if table else None,
        sheet=table.sheet if table else None,
        notes=table.notes if table else [],
        filled=table.filled if table else [],
    )


def checked_upload(
    data: bytes,
    file: str,
    *,
    contract: Contract,
    vocabulary: Vocabulary,
    regions: RegionConfig,
    region: str,
    limits: Limits,
    today: date,
) -> UploadCheck:
    """Read, normalise and validate one upload of ``contract``'s dataset by ``region``.

    Never raises for bad input: a refused file comes back with ``file_error`` set. Invariant:
    ``rows_in == accepted.height + quarantined.height``."""
    table: UploadTable | None = None
    try:
        table = upload_table(data, set(contract.header_index()), limits)
        mapping, ignored = header_columns(table, contract)
    except rj.FileRejected as error:
        return _empty_check(file, region, contract, (refusal_for_name(error, file),), table)
    except rj.FileProblems as found:
        return _empty_check(file, region, contract, tuple(found.problems), table)

    # rename (and drop), not select: renaming is free, a select or drop copies every column.
    unused = [c for c in table.rows.columns if c not in mapping and c != SOURCE_ROW]
    texts = split_date_ranges(
        (table.rows.drop(unused) if unused else table.rows).rename(mapping), contract)
    cleaned, typed = normalized(texts, contract, vocabulary, city_lookup(regions.city_index()))
    all_text = cleaned.select(
        *[pl.col(c.name).alias(c.name + TEXT_SUFFIX) for c in contract.columns],
        pl.col(SOURCE_ROW),
    )
    checked = pl.concat([typed, all_text], how="horizontal")
    reg = regions.regions[region]
    rules = contract_rules(
        contract, region=region, region_label=f"{reg.name_zh} {region}", today=today
    )
    errors = rj.with_row_messages(row_errors(checked, rules), file)

    rejected = pl.repeat(False, checked.height, dtype=pl.Boolean, eager=True).scatter(
        errors["_row"].unique(), True
    )
    staged_columns = [name for name in contract.staged_schema() if name in typed.columns]
    # Pick the columns first: filtering copies every column it is given.
    accepted = checked.select(*staged_columns, SOURCE_ROW).filter(~rejected).select(
        *staged_columns, pl.lit(region).alias("region"), pl.col(SOURCE_ROW)
    )
    quarantined = (
        checked.filter(rejected)
        .with_columns(rejected.arg_true().cast(pl.Int64).alias("_row"))
        .join(_error_structs(errors), on="_row", how="inner", maintain_order="left")
        .select(
            *[_shown(c).alias(c.name) for c in contract.columns if not c.pii],
            pl.lit(region).alias("region"),
            pl.col(SOURCE_ROW),
            pl.col(ERRORS_COLUMN),
        )
    )
    return UploadCheck(
        file=file,
        region=region,
        dataset=contract.name,
        contract_version=contract.version,
        rows_in=checked.height,
        accepted=accepted,
        quarantined=quarantined,
        errors=errors.drop("label", "detail"),
        format=table.format,
        encoding=table.encoding,
        sheet=table.sheet,
        notes=table.notes,
        filled=table.filled,
        ignored_columns=ignored,
    )


def checked_file_as_json(check: UploadCheck) -> dict:
    """The ``registry check --json`` document (docs/architecture.md §13): every file-level
    problem, every row error, and the batch-gate warnings; ``sheet`` names the worksheet read."""
    return {
        "file": check.file,
        "region": check.region,
        "dataset": check.dataset,
        "format": check.format,
        "encoding": check.encoding,
        "sheet": check.sheet,
        "rows": check.rows_in,
        "accepted": check.accepted.height,
        "rejected": check.rejected,
        "file_errors": [error.as_dict(check.file) for error in check.file_errors],
        "row_errors": (
            check.errors.select("row", "column", "code", "message_zh", "message_en").to_dicts()
            if not check.file_errors
            else []
        ),
        "warnings": list(check.warnings),
        **filled_cells_as_dicts(check.filled),
    }
