"""The personal-data guard on the published tables (pure): PII columns by name, from the input
contracts, and string values that look like a mainland mobile number or resident ID number
(:mod:`registry.config.pii`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

import polars as pl

from registry.config.pii import PATTERNS, masked

# Identifiers the registry itself checks or generates, whose digit runs can mimic personal
# numbers: the format-checked organisation code, and batch ids (time stamps and hex hashes).
# The value scan leaves them out; every other string is scanned.
_NOT_PERSONAL = frozenset({"uscc", "source_batches"})


@dataclass(frozen=True)
class PIIFinding:
    table: str
    column: str
    kind: str  # pii_column | mobile_number | resident_id
    count: int
    example: str | None = None  # masked

    def describe(self) -> str:
        where = f"{self.table}.{self.column}"
        if self.kind == "pii_column":
            return f"{where} is a PII column in the input contracts"
        return f"{where}: {self.count} value(s) look like a {self.kind} (e.g. {self.example})"


def pii_findings(
    tables: Mapping[str, pl.DataFrame], pii_columns: Iterable[str]
) -> list[PIIFinding]:
    """Every PII column (by name, from the input contracts) and every string value that looks
    like a mainland mobile number or resident ID number (:mod:`registry.config.pii`), in every
    table.
    String and list-of-string columns are scanned; examples are masked."""
    pii = set(pii_columns)
    findings: list[PIIFinding] = []
    for table, frame in tables.items():
        for column, dtype in frame.schema.items():
            if column in pii:
                findings.append(PIIFinding(table, column, "pii_column", frame.height))
            if column in _NOT_PERSONAL:
                continue
            if dtype == pl.String:
                values = frame.get_column(column)
            elif dtype == pl.List(pl.String):
                values = frame.get_column(column).explode()
            else:
                continue
            values = values.drop_nulls()
            for kind, pattern in PATTERNS.items():
                hits = values.filter(values.str.contains(pattern))
                if hits.len():
                    example = pl.select(masked(pl.lit(hits.sort()[0]))).item()
                    findings.append(PIIFinding(table, column, kind, hits.len(), example))
    return findings


def merged_findings(parts: Iterable[list[PIIFinding]]) -> list[PIIFinding]:
    """The findings of a table read part by part as one table's: per table, column and kind,
    the counts added up and the first part's example."""
    merged: dict[tuple[str, str, str], PIIFinding] = {}
    for findings in parts:
        for finding in findings:
            key = (finding.table, finding.column, finding.kind)
            seen = merged.get(key)
            merged[key] = finding if seen is None else replace(
                seen, count=seen.count + finding.count)
    return list(merged.values())
