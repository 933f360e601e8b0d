"""The suites as data, their parameters and the gate's scope; pure: no storage, no settings.

Suites are the reviewed JSON files of ``expectations/`` (:func:`load_suite`); their numbers that
depend on the deployment come from ``config/quality.yaml``
(:class:`~registry.config.quality.QualityConfig`) as suite parameters
(:func:`staged_suite_parameters`, :func:`registry_suite_parameters`).

The gate's scope (:func:`suite_in_scope`; docs/architecture.md, What a batch gate may hold): an
expectation whose meta says ``"scope": "complete_list"`` judges a council's whole list (share of
active filings, pass rate, category mix, score means) and runs on replace batches only, so an
upsert batch is never held for carrying bad news; a range or date-window check on an optional
column that is empty throughout the batch is not run either. The result lists what was not
run, and why.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from registry._compat.gx import condition_names
from registry.config.contracts import Contract
from registry.config.pii import MOBILE_PATTERN, RESIDENT_ID_PATTERN
from registry.config.quality import QualityConfig
from registry.config.score_model import ScoreModel

# List columns are checked as their items joined by this (not a digit, so the PII patterns,
# which stop at non-digits, see each item on its own).
LIST_JOIN = "|"
COMPLETE_LIST_SCOPE = "complete_list"
_SUITE_COLUMN_KEYS = ("column", "column_A", "column_B")
# Beside a date column that can say "no end" (``ColumnSpec.no_end``: a filing's 有效期至 长期),
# the staged suites read its dates as ``{column}_dated``, null where it says no end
# (:func:`gate_frame`): the date window judges the dates a council wrote, not 9999-12-31.
DATED_SUFFIX = "_dated"
# Words of a pandas query condition that name no column.
_CONDITION_WORDS = frozenset({"isnull", "notnull", "and", "or", "not"})
# Checks of a column's range or date window. A column empty throughout the batch has no value
# for them to judge, and Great Expectations fails them with an observed value of None.
_RANGE_CHECKS = frozenset({
    "expect_column_min_to_be_between",
    "expect_column_max_to_be_between",
    "expect_column_mean_to_be_between",
})


# ---------------------------------------------------------------------------------------------
# Suites


@dataclass(frozen=True)
class Suite:
    """A suite as reviewed: its JSON document, name, version and content hash."""

    name: str
    version: str
    sha256: str
    document: dict[str, Any]

    @property
    def label(self) -> str:
        """``{version}+{sha256[:12]}``: what manifests and batch records record."""
        return f"{self.version}+{self.sha256[:12]}"

    def columns(self) -> list[str]:
        """Every column an expectation of the suite reads, in first-use order."""
        seen: dict[str, None] = {}
        for expectation in self.document["expectations"]:
            kwargs = expectation["kwargs"]
            for key in _SUITE_COLUMN_KEYS:
                if key in kwargs:
                    seen[kwargs[key]] = None
            for column in kwargs.get("column_list", []):
                seen[column] = None
            condition = kwargs.get("row_condition")
            if condition:
                for word in condition_names(condition):
                    if word not in _CONDITION_WORDS:
                        seen[word] = None
        return list(seen)


def load_suite(expectations_dir: Path, name: str) -> Suite:
    """The suite ``{name}.json`` of ``expectations_dir``. Raises ``FileNotFoundError`` when it is
    missing and ``ValueError`` when its name or ``meta.version`` is wrong."""
    path = Path(expectations_dir) / f"{name}.json"
    raw = path.read_bytes()
    document = json.loads(raw)
    if document.get("name") != name:
        raise ValueError(f"{path}: names suite {document.get('name')!r}, expected {name!r}")
    version = (document.get("meta") or {}).get("version")
    if not version:
        raise ValueError(f"{path}: meta.version is missing")
    return Suite(name, str(version), hashlib.sha256(raw).hexdigest(), document)


def suite_labels(config: QualityConfig, expectations_dir: Path) -> dict[str, str]:
    """Name -> ``{version}+{sha}`` of every suite ``config`` names, from ``expectations_dir``."""
    names = sorted({*config.suites.staged.values(), *config.suites.registry.values()})
    return {name: load_suite(expectations_dir, name).label for name in names}


# ---------------------------------------------------------------------------------------------
# Suite parameters


@dataclass(frozen=True)
class PreviousBatch:
    """The region's previous released full (replace-mode) batch of a dataset."""

    batch_id: str
    accepted: int


def row_count_bounds(
    config: QualityConfig, dataset: str, mode: str, previous: PreviousBatch | None
) -> dict[str, Any]:
    """``floor``, ``min_rows`` and ``max_rows`` (None: no ceiling) of a batch. A replace batch
    with a previous full batch must also hold ``replace_min_ratio``..``replace_max_ratio`` times
    its accepted rows."""
    floor = config.row_counts.floor[dataset]
    bounds: dict[str, Any] = {"floor": floor, "min_rows": floor, "max_rows": None,
                              "previous": None}
    if mode == "replace" and previous is not None:
        rc = config.row_counts
        bounds["min_rows"] = max(floor, math.ceil(previous.accepted * rc.replace_min_ratio))
        bounds["max_rows"] = max(bounds["min_rows"],
                                 math.floor(previous.accepted * rc.replace_max_ratio))
        bounds["previous"] = previous
    return bounds


def staged_suite_parameters(
    config: QualityConfig, *, region: str, dataset: str, today: date,
    bounds: Mapping[str, Any],
) -> dict[str, Any]:
    """The suite parameters of a staged batch of ``dataset`` from ``region``, ingested on
    ``today`` (council time), with row-count ``bounds`` from :func:`row_count_bounds`."""
    params: dict[str, Any] = {
        "min_rows": bounds["min_rows"],
        "max_rows": bounds["max_rows"],
        "region": [region],
        "earliest_date": config.dates.earliest,
    }
    for column, days in config.dates.days_ahead.items():
        params[f"latest_{column}"] = today + timedelta(days=days)
    for column, ceiling in config.null_ceilings.of(region, dataset).items():
        params[f"{column}_min_filled"] = 1.0 - ceiling
    return params


def registry_suite_parameters(model: ScoreModel) -> dict[str, Any]:
    """Grade thresholds and trusted grades from the score model, and the PII patterns
    (:mod:`registry.config.pii`), as suite parameters of the registry suites."""
    params: dict[str, Any] = {f"grade_{g.grade}_min": g.min_score for g in model.grades}
    params["trusted_grades"] = list(model.trusted_grades)
    params["mobile_pattern"] = MOBILE_PATTERN
    params["resident_id_pattern"] = RESIDENT_ID_PATTERN
    return params


def registry_check_frame(merchants: pl.DataFrame, model: ScoreModel) -> pl.DataFrame:
    """The merchants table as the registry suite reads it: list-of-string columns as their
    ``|``-joined text (pandas cannot test lists), plus ``score_minus_components``,
    ``disqualified`` (any disqualification) and ``trusted_expected`` (a trusted grade and no
    disqualification). Every row is kept."""
    lists = [c for c, t in merchants.schema.items() if t == pl.List(pl.String)]
    return merchants.with_columns(
        *(pl.col(c).list.join(LIST_JOIN) for c in lists),
        (pl.col("score") - pl.col("score_compliance") - pl.col("score_complaints")
         - pl.col("score_quality")).alias("score_minus_components"),
        (pl.col("disqualifications").list.len() > 0).fill_null(False).alias("disqualified"),
    ).with_columns(
        (pl.col("grade").is_in(list(model.trusted_grades)).fill_null(False)
         & ~pl.col("disqualified")).alias("trusted_expected"),
    )


# ---------------------------------------------------------------------------------------------
# The staged gate's scope


@dataclass(frozen=True)
class SkippedCheck:
    """An expectation of the suite that the gate did not run on a batch, and why: ``reason`` is
    ``complete_list_only`` or ``optional_column_empty``."""

    code: str
    expectation: str
    column: str | None
    reason: str
    message_zh: str
    message_en: str


def gate_frame(staged: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """``staged`` (a batch's rows as staged, or an upload's accepted rows) as the staged
    suites read it: with ``{column}_dated`` (:data:`DATED_SUFFIX`) after it for each date
    column of ``contract`` that can say "no end", holding its dates, null where it says no
    end. Every row is kept."""
    return staged.with_columns(
        pl.when(pl.col(c.name) != pl.lit(c.no_end.reads_as)).then(pl.col(c.name))
        .alias(c.name + DATED_SUFFIX)
        for c in contract.columns if c.no_end is not None and c.name in staged.columns)


def empty_optional_columns(frame: pl.DataFrame, required: Iterable[str]) -> frozenset[str]:
    """The columns of ``frame`` that are not ``required`` and hold no value in any row."""
    nulls = frame.null_count().row(0, named=True)
    return frozenset(c for c, n in nulls.items() if n == frame.height and c not in set(required))


def suite_in_scope(suite: Suite, *, mode: str, empty_optional: Iterable[str]
                   ) -> tuple[Suite, tuple[SkippedCheck, ...]]:
    """``suite`` as the gate runs it on one staged batch uploaded in ``mode`` (``replace`` or
    ``upsert``), and the expectations it leaves out, in suite order (docs/architecture.md,
    What a batch gate may hold):

    - ``complete_list_only``: an expectation whose meta says ``"scope": "complete_list"``
      judges a council's whole list, so it runs on replace batches only;
    - ``optional_column_empty``: a range or date-window check (column min, max or mean between)
      of a column in ``empty_optional``, the optional columns empty throughout the batch.

    The suite keeps its name, version and hash (the reviewed file is the same); its notes list
    what is left out, so the batch's Data Docs say it too. Raises nothing."""
    empty = set(empty_optional)
    kept: list[dict[str, Any]] = []
    skipped: list[SkippedCheck] = []
    for expectation in suite.document["expectations"]:
        meta = expectation.get("meta") or {}
        column = expectation["kwargs"].get("column")
        if meta.get("scope") == COMPLETE_LIST_SCOPE and mode != "replace":
            reason = "complete_list_only"
            zh = "此项检查针对完整名单，只用于全量替换批次；本批次为增量更新，不做此项检查"
            en = ("a whole-list plausibility check, run on complete (replace-mode) lists only; "
                  "this batch is an upsert")
        elif expectation["type"] in _RANGE_CHECKS and column in empty:
            reason = "optional_column_empty"
            zh = f"可选列 {column} 在本批次中全部为空，没有可检查的取值范围"
            en = f"the optional column {column} is empty throughout the batch: no value to check"
        else:
            kept.append(expectation)
            continue
        skipped.append(SkippedCheck(
            code=meta.get("code", expectation["type"]), expectation=expectation["type"],
            column=column, reason=reason, message_zh=zh, message_en=en))
    if not skipped:
        return suite, ()
    notes = [f"Not run on this batch: `{s.expectation}`"
             + (f" on `{s.column}`" if s.column else "") + f" ({s.code}): {s.message_en}."
             for s in skipped]
    return (replace(suite, document={**suite.document, "expectations": kept, "notes": notes}),
            tuple(skipped))
