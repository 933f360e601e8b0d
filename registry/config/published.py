"""The published tables' contracts (``contracts/{table}.odcs.yaml``, Open Data Contract Standard
v3.2.0): each table's columns in their fixed order, Parquet types, which may be null, Chinese and
English descriptions, allowed values and their meanings, units, key and version.

These files own the published columns: the build writes exactly the columns listed here, in
this order (:mod:`registry.build.columns`). They describe what this code writes, so they live
beside it rather than in a deployment setting. Only the fields the registry reads are modelled
here, strictly; datacontract-cli lints each whole document and tests published snapshots
against it (tests/contracts/, contracts/README.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from registry.config.yaml_loading import safe_load

# Beside the code, like the folders settings.PROJECT_ROOT names; not read from settings, so
# that the build (which may not read settings, docs/architecture.md §1.3) can read it.
CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "contracts"
CONTRACT_SUFFIX = ".odcs.yaml"

# A column's physicalType is its Parquet type as the publisher writes it (the logical type
# where Parquet has one: STRING, DATE, LIST); each reads back as exactly one polars dtype.
PARQUET_DTYPES: dict[str, pl.DataType] = {
    "STRING": pl.String(),
    "BOOLEAN": pl.Boolean(),
    "DATE": pl.Date(),
    "DOUBLE": pl.Float64(),
    "INT64": pl.Int64(),
}
LIST_TYPE = "LIST"
_SEMVER = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
# The customProperties the registry reads: a short Chinese name, the Chinese description, a unit.
_LABEL_ZH, _DESCRIPTION_ZH, _UNIT = "labelZh", "descriptionZh", "unit"


class _Odcs(BaseModel):
    # ODCS has many more fields (lint checks them); the registry reads only these.
    model_config = ConfigDict(frozen=True, extra="ignore")


class _CustomProperty(_Odcs):
    property: str
    value: Any


class _Described(_Odcs):
    """An element with an English ``description`` and its Chinese one in ``customProperties``."""

    description: str = Field(min_length=1)
    customProperties: list[_CustomProperty] = Field(default_factory=list)

    @model_validator(mode="after")
    def _described_in_chinese(self) -> _Described:
        names = [p.property for p in self.customProperties]
        if len(set(names)) != len(names):
            raise ValueError(f"a custom property is given twice: {names}")
        self.require(_DESCRIPTION_ZH)
        return self

    def custom(self, name: str) -> Any:
        return next((p.value for p in self.customProperties if p.property == name), None)

    def require(self, name: str) -> str:
        value = str(self.custom(name) or "").strip()
        if not value:
            raise ValueError(f"no {name} custom property")
        return value


class _EnumValue(_Described):
    value: str


class _Items(_Odcs):
    physicalType: str
    enum: list[_EnumValue] = Field(default_factory=list)


class _Property(_Described):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    physicalType: str
    required: bool = False
    unique: bool = False
    primaryKey: bool = False
    primaryKeyPosition: int | None = None
    items: _Items | None = None
    enum: list[_EnumValue] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_type(self) -> _Property:
        self.require(_LABEL_ZH)
        if self.physicalType == LIST_TYPE:
            if self.items is None or self.items.physicalType not in PARQUET_DTYPES:
                raise ValueError(
                    f"{self.name}: a LIST needs items of one of {list(PARQUET_DTYPES)}"
                )
            if self.enum:
                raise ValueError(f"{self.name}: a LIST column's allowed values go on its items")
        elif self.physicalType not in PARQUET_DTYPES:
            raise ValueError(f"{self.name}: physicalType {self.physicalType!r} is not one of "
                             f"{[*PARQUET_DTYPES, LIST_TYPE]}")
        elif self.items is not None:
            raise ValueError(f"{self.name}: only a LIST has items")
        return self


class _Schema(_Described):
    name: str
    properties: list[_Property] = Field(min_length=1)

    @model_validator(mode="after")
    def _labelled(self) -> _Schema:
        self.require(_LABEL_ZH)
        return self


class _Document(_Odcs):
    apiVersion: str = Field(pattern=r"^v3\.")
    kind: Literal["DataContract"]
    name: str
    version: str = Field(pattern=_SEMVER.pattern)
    schema_: list[_Schema] = Field(alias="schema", min_length=1, max_length=1)


@dataclass(frozen=True)
class AllowedValue:
    """One allowed value of a column (of its items, for a list column) and what it means."""

    value: str
    description_en: str
    description_zh: str


@dataclass(frozen=True)
class PublishedColumn:
    """One published column. ``dtype`` is the polars dtype its Parquet type reads back as;
    ``required`` means never null. ``values`` are the allowed values, of the items for a list
    column; empty when any value is allowed."""

    name: str
    dtype: pl.DataType
    required: bool
    description_zh: str
    description_en: str
    label_zh: str
    unique: bool = False
    unit: str | None = None
    values: tuple[AllowedValue, ...] = ()


@dataclass(frozen=True)
class PublishedContract:
    """A published table's contract: ``columns`` in the table's order, ``key`` the columns that
    identify a row (in key order), ``raw`` the exact YAML bytes, read from the file ``path``
    (None for a contract a snapshot carries)."""

    table: str
    version: str
    columns: tuple[PublishedColumn, ...]
    key: tuple[str, ...]
    description_en: str
    description_zh: str
    label_zh: str
    path: Path | None
    raw: bytes

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @cached_property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @cached_property
    def schema(self) -> dict[str, pl.DataType]:
        """Column -> polars dtype, in order: what reading the table's Parquet file gives."""
        return {c.name: c.dtype for c in self.columns}


def _column(prop: _Property) -> PublishedColumn:
    if prop.items is not None:
        dtype: pl.DataType = pl.List(PARQUET_DTYPES[prop.items.physicalType])
        allowed = prop.items.enum
    else:
        dtype, allowed = PARQUET_DTYPES[prop.physicalType], prop.enum
    return PublishedColumn(
        name=prop.name,
        dtype=dtype,
        required=prop.required,
        description_zh=prop.require(_DESCRIPTION_ZH),
        description_en=prop.description,
        label_zh=prop.require(_LABEL_ZH),
        unique=prop.unique,
        unit=None if prop.custom(_UNIT) is None else str(prop.custom(_UNIT)),
        values=tuple(
            AllowedValue(v.value, v.description, v.require(_DESCRIPTION_ZH)) for v in allowed
        ),
    )


def _key(table: str, properties: list[_Property]) -> tuple[str, ...]:
    keyed = sorted((p for p in properties if p.primaryKey),
                   key=lambda p: p.primaryKeyPosition or 0)
    positions = [p.primaryKeyPosition for p in keyed]
    if not keyed or positions != list(range(1, len(keyed) + 1)):
        raise ValueError(f"{table}: the key needs primaryKeyPosition 1..n, got {positions}")
    return tuple(p.name for p in keyed)


def parse_published_contract(raw: bytes, table: str, path: Path | None = None
                             ) -> PublishedContract:
    """Parse the contract of ``table`` from the YAML bytes ``raw`` (read from ``path``, if from
    a file). Raises ``ValueError`` (pydantic's ValidationError among them) when a field the
    registry reads is missing or malformed, a column is declared twice, the key's positions are
    not 1..n, or the contract's ``name`` or its table's name is not ``table``."""
    document = _Document.model_validate(safe_load(raw))
    schema = document.schema_[0]
    where = path or table
    if document.name != table or schema.name != table:
        raise ValueError(f"{where}: contract {document.name!r} with table {schema.name!r} "
                         f"is not the contract of {table!r}")
    names = [p.name for p in schema.properties]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: a column is declared twice")
    return PublishedContract(
        table=table,
        version=document.version,
        columns=tuple(_column(p) for p in schema.properties),
        key=_key(table, schema.properties),
        description_en=schema.description,
        description_zh=schema.require(_DESCRIPTION_ZH),
        label_zh=schema.require(_LABEL_ZH),
        path=path,
        raw=raw,
    )


def published_contract(path: Path) -> PublishedContract:
    """The contract in the file ``path`` (``{table}.odcs.yaml``); raises as
    :func:`parse_published_contract` does."""
    return parse_published_contract(path.read_bytes(), path.name.removesuffix(CONTRACT_SUFFIX),
                                    path)


@cache
def load_published_contracts(contracts_dir: Path = CONTRACTS_DIR) -> dict[str, PublishedContract]:
    """Every ``{table}.odcs.yaml`` directly in ``contracts_dir`` (not ``released/``), by table
    name, in file-name order. Raises ``ValueError`` as :func:`published_contract` does."""
    paths = sorted(Path(contracts_dir).glob(f"*{CONTRACT_SUFFIX}"))
    return {contract.table: contract for contract in map(published_contract, paths)}
