"""Dataset contracts (``schemas/*.yaml``): columns, dtypes, checks, aliases, PII flags, keys.

Contracts are data. This module only parses and validates them, and answers questions about
them (which header names which column, what a staged frame's schema is). The checks a contract
declares are turned into row rules in :mod:`registry.ingest.validation`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from datetime import date
from functools import cache, cached_property
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from registry.config.yaml_loading import safe_load

Dtype = Literal[
    "string", "uscc", "enum", "boolean", "date", "float", "list", "country_list", "city", "phone"
]

# What each contract dtype becomes in staged Parquet.
STAGED_DTYPES: dict[str, pl.DataType] = {
    "string": pl.String(),
    "uscc": pl.String(),
    "enum": pl.String(),
    "city": pl.String(),
    "phone": pl.String(),
    "boolean": pl.Boolean(),
    "date": pl.Date(),
    "float": pl.Float64(),
    "list": pl.List(pl.String()),
    "country_list": pl.List(pl.String()),
}

# Lineage columns on every staged and quarantined row (docs/architecture.md §4.4).
LINEAGE_SCHEMA: dict[str, pl.DataType] = {
    "_source_key": pl.String(),
    "_sha256": pl.String(),
    "_source_row": pl.Int64(),
    "_batch_id": pl.String(),
    "_ingested_at": pl.Datetime("us", "UTC"),
}

# Council templates mark required headers with a star; some add a colon.
_HEADER_DECORATION = re.compile(r"^[*※＊]+|[*※＊:：]+$")
_HEADER_SEPARATORS = re.compile(r"[\s_]+")
# Words, then a note in brackets, in NFKC text (full-width brackets are plain): group 1 is the
# words. A header's (状态(有效/暂停/撤销), 有效期至(年-月-日), 备案编号【必填】) and a value's
# (撤销(违规经营), 暂停【整改中】: registry.ingest.normalize, polars' regex).
WORDS_BEFORE_NOTE = r"^([^(\[【]+)[(\[【][^()\[\]【】]*[)\]】]$"
_HEADER_NOTE = re.compile(WORDS_BEFORE_NOTE)
# Words, then a note after a colon, a comma, a semicolon or 、, in a value's matching key
# (:func:`value_key`: NFKC, so full-width punctuation is plain): 不合格：菌落总数超标,
# 撤销，违规经营 (registry.ingest.normalize). Group 1 is the words.
WORDS_BEFORE_REMARK = r"^([^:;,、]+)[:;,、].+$"


# Characters that show nothing (Unicode category Cf: zero-width spaces and joiners, byte-order
# and direction marks, soft hyphens). Pasted from a chat or a web page, they ride along with a
# code or a header, and a council means nothing by them: they are taken out of headers here and
# out of every cell (registry.ingest.normalize).
INVISIBLE_CATEGORY = "Cf"


def without_invisible(text: str) -> str:
    """``text`` without its :data:`INVISIBLE_CATEGORY` characters."""
    if text.isascii():
        return text
    return "".join(ch for ch in text if unicodedata.category(ch) != INVISIBLE_CATEGORY)


def header_key(text: str) -> str:
    """How a header cell (or an alias) is matched: NFKC, without invisible characters,
    case-folded, without spaces, underscores or the ``*`` that templates put on required
    columns."""
    folded = without_invisible(unicodedata.normalize("NFKC", text)).strip().casefold()
    return _HEADER_SEPARATORS.sub("", _HEADER_DECORATION.sub("", folded))


def known_header_key(text: str, known: Collection[str],
                     past_note: Collection[str] | None = None) -> str | None:
    """The key of ``known`` (:func:`header_key` forms) that header cell ``text`` names: its
    own key, or, when that is not known, the key of its words before a note in brackets
    (状态（有效/暂停/撤销） names 状态) if it is one of ``past_note`` (default: ``known``).
    None when neither is known."""
    key = header_key(text)
    if key in known:
        return key
    note = _HEADER_NOTE.match(key)
    word = note.group(1) if note else None
    return word if word in (known if past_note is None else past_note) else None


def value_key(text: str) -> str:
    """How an enum, boolean or country value is matched: NFKC, case-folded, no spaces."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


class RequiredWhen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str
    equals: str


class NoEnd(BaseModel):
    """How a date column that ends something (a filing's 有效期至) says it has no end: the
    ``words`` offices write (长期), matched as enum values are (:func:`value_key`), and the
    date they are read, staged and published as (``reads_as``, 9999-12-31)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reads_as: date
    words: list[str] = Field(min_length=1)

    def keys(self) -> list[str]:
        """The words' matching keys."""
        return [value_key(word) for word in self.words]


class Description(BaseModel):
    """What a column means, for the clerks who fill it in and the people who read it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    zh: str
    en: str


class ColumnSpec(BaseModel):
    """One contract column."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label_zh: str
    description: Description
    # A value the registry accepts, shown in the council's template (registry.ingest.templates).
    example: str
    dtype: Dtype
    required: bool = False
    # Personal data by design (a consumer's or contact's name or phone): validated, hidden in
    # receipts, never staged, quarantined or published; only the raw upload's archive keeps it
    # (docs/architecture.md, Personal data).
    pii: bool = False
    aliases: list[str] = Field(default_factory=list)
    # enum: canonical English value -> the other ways councils write it (a template's dropdown
    # offers the first; registry.demo writes these)
    values: dict[str, list[str]] | None = None
    # enum: canonical value -> more words councils write for it, read as it but not offered
    # (an office's own word for an ended filing: 注销, 吊销)
    read_also: dict[str, list[str]] = Field(default_factory=dict)
    # enum: canonical values whose words are read with a note after them, in brackets
    # (撤销（违规经营）) or after a colon, a comma, a semicolon or 、 (不合格：菌落总数超标): only
    # values that pause, end or fail something, so that a note can never make a row read as
    # more trusted than its word says (有效（待复核） and 合格：复检 are still refused)
    read_with_note: list[str] = Field(default_factory=list)
    # enum: when one file names a natural key twice and the copies disagree, the copy holding
    # the first of these values (the last such copy in the file) is read and the others are
    # refused; without one of them, every copy is refused. Only values that pause or end
    # something, least trusted first, so that a file saying a filing ended never publishes it
    # as active. At most one column per contract.
    settles_copies: list[str] = Field(default_factory=list)
    min: float | None = None
    max: float | None = None
    max_length: int | None = Field(default=None, gt=0)
    required_when: RequiredWhen | None = None
    not_before: str | None = None
    not_future: bool = False
    # date: the words that say there is no end, and the date they are read as (only a date
    # that ends something: a filing's validity)
    no_end: NoEnd | None = None
    # date: the date column a cell of this one may also give, as a range before its own date
    # (有效期 2024.01.01-2027.12.31, or 2026年1月1日至长期), in a file that has no column for
    # it: the start is read as that column, the end as this one (registry.ingest.normalize)
    range_start: str | None = None
    # float: an amount of money in this currency (schemas/reference/currencies.yaml), whose
    # cells may carry its marks (1,200.50元, ¥300), a multiple (0.5万元) or a word for none (无)
    currency: str | None = None
    # a Traditional→Simplified matching-key column derived from this one (names)
    match_key: str | None = None

    @model_validator(mode="after")
    def _enum_has_values(self) -> ColumnSpec:
        if (self.dtype == "enum") != (self.values is not None):
            raise ValueError(f"{self.name}: 'values' is required for, and only for, enum columns")
        if self.no_end is not None and self.dtype != "date":
            raise ValueError(f"{self.name}: 'no_end' is for date columns only")
        if self.range_start is not None and self.dtype != "date":
            raise ValueError(f"{self.name}: 'range_start' is for date columns only")
        if self.currency is not None and self.dtype != "float":
            raise ValueError(f"{self.name}: 'currency' is for float columns only")
        for key in ("read_also", "read_with_note", "settles_copies"):
            unknown = set(getattr(self, key)) - set(self.values or {})
            if unknown:
                raise ValueError(f"{self.name}: '{key}' names values it lacks: {sorted(unknown)}")
        return self

    @property
    def label(self) -> str:
        """How messages name the column: ``备案编号 (filing_id)``."""
        return f"{self.label_zh} ({self.name})"

    @property
    def staged_dtype(self) -> pl.DataType:
        return STAGED_DTYPES[self.dtype]

    @property
    def note_may_change_meaning(self) -> bool:
        """A number's header note may carry its unit (挽回经济损失(万元)): read only as an
        alias spells it."""
        return self.dtype == "float"

    def value_index(self) -> dict[str, str]:
        """Matching key of every enum value and alias -> canonical value."""
        index: dict[str, str] = {}
        for canonical, aliases in (self.values or {}).items():
            for alias in (canonical, *aliases, *self.read_also.get(canonical, ())):
                index[value_key(alias)] = canonical
        return index

    def noted_index(self) -> dict[str, str]:
        """:meth:`value_index` of the values read with a note (``read_with_note``)."""
        return {key: value for key, value in self.value_index().items()
                if value in self.read_with_note}


class Contract(BaseModel):
    """A dataset's input contract. ``natural_key`` includes ``region``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    version: str
    title_zh: str
    title_en: str
    natural_key: list[str]
    ignore: list[str] = Field(default_factory=list)
    columns: list[ColumnSpec]

    @model_validator(mode="after")
    def _consistent(self) -> Contract:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: a column is declared twice")
        for key in self.natural_key:
            if key != "region" and key not in names:
                raise ValueError(f"{self.name}: natural key column {key!r} is not declared")
        for col in self.columns:
            for ref in (col.not_before, col.required_when and col.required_when.column,
                        col.range_start):
                if ref and ref not in names:
                    raise ValueError(f"{self.name}.{col.name}: refers to unknown column {ref!r}")
            if col.range_start and next(
                    c for c in self.columns if c.name == col.range_start).dtype != "date":
                raise ValueError(f"{self.name}.{col.name}: range_start {col.range_start!r} "
                                 "is not a date column")
        seen: dict[str, str] = {}
        for col in self.columns:
            for alias in (col.name, *col.aliases):
                owner = seen.setdefault(header_key(alias), col.name)
                if owner != col.name:
                    raise ValueError(
                        f"{self.name}: header {alias!r} would name both {owner} and {col.name}"
                    )
        settling = [c.name for c in self.columns if c.settles_copies]
        if len(settling) > 1:
            raise ValueError(f"{self.name}: several columns settle copies: {settling}")
        clash = {header_key(i) for i in self.ignore} & set(seen)
        if clash:
            raise ValueError(f"{self.name}: ignored headers also name columns: {sorted(clash)}")
        return self

    @cached_property
    def by_name(self) -> dict[str, ColumnSpec]:
        return {c.name: c for c in self.columns}

    @property
    def copies_settled_by(self) -> ColumnSpec | None:
        """The column whose values settle copies of one key that disagree (``settles_copies``),
        if any."""
        return next((c for c in self.columns if c.settles_copies), None)

    @property
    def pii_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.pii]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def range_of(self, name: str) -> ColumnSpec | None:
        """The column whose cells may give column ``name`` as the start of a range, in a file
        without a column of its own for it (``range_start``); None when none may."""
        return next((c for c in self.columns if c.range_start == name), None)

    def header_index(self) -> dict[str, str | None]:
        """Matching key of every accepted header -> column name, or None for ignored headers."""
        index: dict[str, str | None] = {header_key(i): None for i in self.ignore}
        for col in self.columns:
            for alias in (col.name, *col.aliases):
                index[header_key(alias)] = col.name
        return index

    def staged_schema(self) -> dict[str, pl.DataType]:
        """Column -> dtype of this dataset's staged Parquet, in order. PII columns are not
        staged: nothing downstream reads them (PIPL minimisation)."""
        schema: dict[str, pl.DataType] = {}
        for col in self.columns:
            if col.pii:
                continue
            schema[col.name] = col.staged_dtype
            if col.match_key:
                schema[col.match_key] = pl.String()
        return {**schema, "region": pl.String(), **LINEAGE_SCHEMA}


class Currency(BaseModel):
    """How an amount in one currency is written (``schemas/reference/currencies.yaml``), each
    word keyed by :func:`value_key`: the marks that may stand before or after the number, the
    multiples a word after it names (万), and the words for none (read as 0)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    marks: list[str]
    multiples: dict[str, float] = Field(default_factory=dict)
    none: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _keyed(self) -> Currency:
        words = [*self.marks, *self.multiples, *self.none]
        if any(word != value_key(word) or not word for word in words):
            raise ValueError(f"currency words must be written as matched (NFKC, lower case, no "
                             f"spaces): {words}")
        return self


class Vocabulary(BaseModel):
    """Shared value tables (``schemas/reference/``): yes/no words, country names, and how
    amounts of money are written."""

    model_config = ConfigDict(frozen=True)

    booleans: dict[str, bool]
    countries: dict[str, str]
    currencies: dict[str, Currency]


@cache
def load_contracts(schemas_dir: Path) -> dict[str, Contract]:
    """Every ``*.yaml`` contract directly in ``schemas_dir``, by dataset name.

    Raises ``ValueError`` (pydantic's ValidationError) on a contract that is inconsistent, and
    ``ValueError`` when a file's ``name`` does not match its file name.
    """
    contracts: dict[str, Contract] = {}
    for path in sorted(Path(schemas_dir).glob("*.yaml")):
        with open(path, encoding="utf-8") as fh:
            contract = Contract.model_validate(safe_load(fh))
        if contract.name != path.stem:
            raise ValueError(f"{path}: contract name {contract.name!r} differs from the file name")
        contracts[contract.name] = contract
    return contracts


def within_region(key: Sequence[str]) -> list[str]:
    """A natural key's columns but ``region``: what tells a stream's rows apart, every batch of
    a stream being one region's."""
    return [c for c in key if c != "region"]


def natural_keys(contracts: Mapping[str, Contract]) -> dict[str, tuple[str, ...]]:
    """Each dataset's natural key (``region`` first where the contract puts it)."""
    return {name: tuple(contract.natural_key) for name, contract in contracts.items()}


@cache
def load_vocabulary(schemas_dir: Path) -> Vocabulary:
    """The boolean words, country names and currencies in ``schemas_dir/reference``, keyed by
    :func:`value_key`. Raises ``ValueError`` on a name claimed twice."""
    ref = Path(schemas_dir) / "reference"
    with open(ref / "booleans.yaml", encoding="utf-8") as fh:
        raw_booleans = safe_load(fh)
    booleans: dict[str, bool] = {}
    for truth in (True, False):
        for word in raw_booleans[truth]:
            if booleans.setdefault(value_key(str(word)), truth) is not truth:
                raise ValueError(f"booleans.yaml: {word!r} is both yes and no")
    with open(ref / "countries.yaml", encoding="utf-8") as fh:
        raw_countries = safe_load(fh)
    countries: dict[str, str] = {}
    for code, names in raw_countries.items():
        if not (isinstance(code, str) and re.fullmatch(r"[A-Z]{2}", code)):
            raise ValueError(f"countries.yaml: {code!r} is not an alpha-2 code (quote it)")
        for name in (code, *names):
            if countries.setdefault(value_key(name), code) != code:
                raise ValueError(f"countries.yaml: {name!r} names two countries")
    with open(ref / "currencies.yaml", encoding="utf-8") as fh:
        currencies = {code: Currency.model_validate(spec)
                      for code, spec in safe_load(fh).items()}
    return Vocabulary(booleans=booleans, countries=countries, currencies=currencies)
