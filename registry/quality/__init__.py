"""The batch-level quality gate (Great Expectations): staged batches and the published registry
are validated as a whole against the reviewed suites in ``expectations/``, Data Docs of every
run are stored under ``reports/``, and each ingest run leaves per-region scorecards.

Pandera judges each row at ingest; these suites judge a batch or a table: too few rows, a
replace-mode list far shorter than the region's previous full list, a key repeated, a column
suddenly empty, a pass rate that cannot be true, dates from another century; and, before
publication, a registry whose scores, grades or trusted flags disagree or that carries
personal data.

Layers:

- suites are data: JSON loaded at run time (:func:`load_suite`), their numbers that depend
  on the deployment in ``config/quality.yaml`` (:func:`load_quality_config`), passed as suite
  parameters (:func:`staged_suite_parameters`, :func:`registry_suite_parameters`);
- the gate's scope (:func:`suite_in_scope`; docs/architecture.md, What a batch gate may
  hold): an expectation whose meta says
  ``"scope": "complete_list"`` judges a council's whole list (share of active filings, pass
  rate, category mix, score means) and runs on replace batches only, so an upsert batch is
  never held for carrying bad news; a range or date-window check on an optional column that is
  empty throughout the batch is not run either. The result lists what was not run, and why;
- :func:`suite_result` runs one suite on one frame and returns a typed
  :class:`SuiteResult`, with a reason in Chinese and English for every failed expectation;
- the I/O edge: :func:`staged_batch_gate` (ingest), :func:`registry_gate` (publication),
  :func:`upload_data_docs`, :func:`write_scorecards`.

Speed (1M rows). Great Expectations validates pandas only. The frame handed to it holds every
row of the batch but only the columns the suite names, as Arrow-backed pandas (zero-copy from
polars). Great Expectations also fingerprints every pandas batch under 1 GB by hashing every
cell (``pandas_execution_engine.HASH_THRESHOLD``) just to label the batch; on a 1M-row batch
that costs more than all the expectations together, and it validates nothing, so it is turned
off. Data Docs templates are compiled once per process (:class:`_TemplatesCompiledOnce`), not
once per run. Nothing is sampled, and no expectation is skipped for speed: only by scope.

``great_expectations`` takes seconds to import: it is imported on first use, never when the
``registry`` package is.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import posixpath
import re
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
import polars as pl
import yaml
from pydantic import BaseModel, ConfigDict

from registry import ledger
from registry.build.scores import ScoreModel
from registry.config.contracts import load_contracts
from registry.config.pii import MOBILE_PATTERN, RESIDENT_ID_PATTERN
from registry.config.regions import RegionConfig
from registry.config.settings import Settings
from registry.storage import AlreadyExists, NotFound, Storage
from registry.storage.layout import report_prefix

log = logging.getLogger(__name__)

DATA_DOCS_DIR = "data_docs/"
# Great Expectations' static files (favicon, fonts) are the same for every run: stored once.
STATIC_PREFIX = "reports/data_docs/static/"
SCORECARDS_PREFIX = "reports/scorecards/"
REFUSED_PREFIX = "reports/refused/"
# List columns are checked as their items joined by this (not a digit, so the PII patterns,
# which stop at non-digits, see each item on its own).
LIST_JOIN = "|"
_STATIC_LINK = re.compile(r"""(["'])((?:\.\.?/)+)static/""")
_SUITE_COLUMN_KEYS = ("column", "column_A", "column_B")
_CONDITION_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# ---------------------------------------------------------------------------------------------
# Configuration and suites (data)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SuiteNames(_Strict):
    staged: dict[str, str]
    registry: dict[str, str]


class RowCounts(_Strict):
    floor: dict[str, int]
    replace_min_ratio: float
    replace_max_ratio: float


class DateWindow(_Strict):
    earliest: date
    days_ahead: dict[str, int]


class NullCeilings(_Strict):
    default: dict[str, dict[str, float]]
    regions: dict[str, dict[str, dict[str, float]]] = {}

    def of(self, region: str, dataset: str) -> dict[str, float]:
        """Ceiling (share of rows that may be empty) per optional column of ``dataset``."""
        return {**self.default.get(dataset, {}),
                **self.regions.get(region, {}).get(dataset, {})}


class ScorecardSettings(_Strict):
    top_failing_checks: int


class QualityConfig(_Strict):
    version: int
    suites: SuiteNames
    row_counts: RowCounts
    dates: DateWindow
    null_ceilings: NullCeilings
    scorecards: ScorecardSettings


@functools.cache
def load_quality_config(config_dir: Path) -> QualityConfig:
    """Parse ``quality.yaml`` in ``config_dir``. Raises on an invalid file."""
    with open(Path(config_dir) / "quality.yaml", encoding="utf-8") as fh:
        return QualityConfig.model_validate(yaml.safe_load(fh))


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
                for word in _CONDITION_COLUMN.findall(re.sub(r'"[^"]*"', "", condition)):
                    if word not in ("isnull", "notnull", "and", "or", "not"):
                        seen[word] = None
        return list(seen)


def load_suite(expectations_dir: Path, name: str) -> Suite:
    """The suite ``{name}.json`` of ``expectations_dir``. Raises ``FileNotFoundError`` when it is
    missing and ``ValueError`` when its name or ``meta.version`` is wrong."""
    import hashlib

    path = Path(expectations_dir) / f"{name}.json"
    raw = path.read_bytes()
    document = json.loads(raw)
    if document.get("name") != name:
        raise ValueError(f"{path}: names suite {document.get('name')!r}, expected {name!r}")
    version = (document.get("meta") or {}).get("version")
    if not version:
        raise ValueError(f"{path}: meta.version is missing")
    return Suite(name, str(version), hashlib.sha256(raw).hexdigest(), document)


def suite_versions(settings: Settings) -> dict[str, str]:
    """Name -> ``{version}+{sha}`` of every suite the gate runs (for the snapshot manifest)."""
    config = load_quality_config(settings.config_dir)
    names = sorted({*config.suites.staged.values(), *config.suites.registry.values()})
    return {name: load_suite(settings.expectations_dir, name).label for name in names}


# ---------------------------------------------------------------------------------------------
# Suite parameters (pure)


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
# Running a suite


@dataclass(frozen=True)
class CheckFailure:
    """One failed expectation, with a stable code and a reason for people."""

    code: str
    expectation: str
    column: str | None
    observed: Any
    message_zh: str
    message_en: str


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


@dataclass(frozen=True)
class SuiteResult:
    """The outcome of one suite on one frame: ``evaluated`` counts the expectations that ran,
    ``skipped`` lists those of the suite that were out of the batch's scope."""

    suite: str
    suite_version: str
    success: bool
    evaluated: int
    passed: int
    rows: int
    failures: tuple[CheckFailure, ...] = ()
    seconds: float = 0.0  # wall time of the run (of the whole gate for a staged batch)
    data_docs: str | None = None  # storage key of the run's Data Docs index.html
    skipped: tuple[SkippedCheck, ...] = ()

    @property
    def codes(self) -> list[str]:
        """The distinct failure codes, in suite order."""
        return list(dict.fromkeys(f.code for f in self.failures))

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["failures"] = [asdict(f) for f in self.failures]
        doc["skipped"] = [asdict(s) for s in self.skipped]
        return doc


# The ingest flow validates uploads in a thread pool. GX parses suite parameters with a module-
# global pyparsing grammar, and pyparsing settles each parse action's arity by trial on its first
# calls, which races between threads ("push_first() missing 1 required positional argument").
# Runs are CPU-bound Python under the GIL anyway, so serialising them costs little.
_ONE_GX_RUN_AT_A_TIME = threading.Lock()


class _TemplatesCompiledOnce(jinja2.BytecodeCache):
    """The compiled code of every Data Docs template, kept for the life of the process.

    Great Expectations renders each page through a new view with a new Jinja environment, so
    without a shared cache it parses and compiles the same ~50 templates again on every run:
    most of the time of building a batch's Data Docs. A template's code depends only on its
    source (the bucket's checksum) and on the environment's settings, which every GX view
    shares; the filters it calls are looked up in the rendering view's own environment. So the
    pages come out the same. A changed template source misses the cache (checksum). Pages are
    rendered inside ``_ONE_GX_RUN_AT_A_TIME``, and a dict item is set atomically anyway."""

    def __init__(self) -> None:
        self._code: dict[str, tuple[str, Any]] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        checksum, code = self._code.get(bucket.key, (None, None))
        if checksum == bucket.checksum:
            bucket.code = code

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = (bucket.checksum, bucket.code)


@functools.cache
def _gx() -> Any:
    import great_expectations as gx
    from great_expectations.execution_engine import pandas_execution_engine
    from great_expectations.render.view.view import DefaultJinjaView

    # The batch fingerprint hashes every cell to label the batch; see the module docstring.
    pandas_execution_engine.HASH_THRESHOLD = 0
    # GX offers no setting for its views' Jinja environment: give each new one the cache.
    templates = _TemplatesCompiledOnce()
    view_init = DefaultJinjaView.__init__

    @functools.wraps(view_init)
    def view_init_with_templates_compiled_once(view: Any, *args: Any, **kwargs: Any) -> None:
        view_init(view, *args, **kwargs)
        view.env.bytecode_cache = templates

    DefaultJinjaView.__init__ = view_init_with_templates_compiled_once
    return gx


def _jsonable(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()[:10] if not isinstance(value, datetime) or (
            value.hour == value.minute == value.second == 0) else value.isoformat()
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "?"


def _format(template: str, values: Mapping[str, Any]) -> str:
    try:
        return template.format_map(_Blank(values))
    except (ValueError, TypeError):
        # A value of another type than the template's format spec: say it plainly.
        return re.sub(r"\{([a-z_]+)(:[^}]*)?\}", lambda m: str(values.get(m.group(1), "?")),
                      template)


def _failure(expectation: Any, context: Mapping[str, Any]) -> CheckFailure:
    config = expectation.expectation_config
    kwargs = dict(config.kwargs)
    meta = config.meta or {}
    result = expectation.result or {}
    observed = result.get("observed_value")
    column = kwargs.get("column") or ", ".join(kwargs.get("column_list") or []) or None
    unexpected_percent = result.get("unexpected_percent")
    mostly = kwargs.get("mostly")
    values = {
        **context,
        **{k: _jsonable(v) for k, v in kwargs.items()},
        "column": column,
        "observed": _jsonable(observed),
        "unexpected_count": result.get("unexpected_count"),
        "unexpected_percent": unexpected_percent,
        "observed_pct": (100 - unexpected_percent) if unexpected_percent is not None else None,
        "ceiling_pct": (1 - mostly) * 100 if isinstance(mostly, (int, float)) else None,
        "condition": kwargs.get("row_condition"),
    }
    error = (expectation.exception_info or {}).get("exception_message")
    message_zh = _format(meta.get("message_zh", config.type), values)
    message_en = _format(meta.get("message_en", config.type), values)
    if error:
        message_zh += f"（检查无法执行：{error}）"
        message_en += f" (the check could not run: {error})"
    return CheckFailure(
        code=meta.get("code", config.type), expectation=config.type, column=column,
        observed=_jsonable(observed), message_zh=message_zh, message_en=message_en,
    )


def _release_batch_data(source: Any) -> None:
    """Let go of the batch's pandas frame when a run is over: the context's execution engine
    keeps it. GX holds its latest context in a module global, so the frame of the last run
    (about 200 MB for a million merchant rows) stayed alive until the next run, through a
    whole publication after the last batch's gate; and an older context is a reference
    cycle that only a full garbage collection frees, which with GX loaded comes after many
    runs, so an ingest of large batches grew by one frame with each. These are GX internals:
    if a GX release moves them, the run's result stands and only the memory is kept
    (tests/quality/test_suites.py then fails)."""
    try:
        engine = source.execution_engine
        if engine is not None:
            engine.batch_manager.batch_data_cache.clear()
            engine.batch_manager.reset_batch_cache()
    except AttributeError as exc:
        log.warning("could not release Great Expectations' copy of the batch: %s", exc)


def suite_result(
    frame: pl.DataFrame,
    suite: Suite,
    parameters: Mapping[str, Any],
    *,
    context: Mapping[str, Any] | None = None,
    data_docs_dir: Path | None = None,
) -> SuiteResult:
    """Run ``suite`` on every row of ``frame`` with its suite ``parameters``.

    Only the columns the suite names are handed to Great Expectations (as Arrow-backed pandas).
    ``context`` fills the reasons' message templates beyond the expectation's own values. With
    ``data_docs_dir``, Data Docs of the run are built there. A column the suite names that the
    frame lacks raises ``KeyError``; an expectation that cannot run fails with its error in the
    reason.
    """
    gx = _gx()
    missing = [c for c in suite.columns() if c not in frame.columns]
    if missing:
        raise KeyError(f"suite {suite.name} reads column(s) the frame lacks: {missing}")
    started = time.perf_counter()
    data = frame.select(suite.columns()).to_pandas(use_pyarrow_extension_array=True)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False}
    actions = []
    if data_docs_dir is not None:
        ctx.add_data_docs_site(site_name="site", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(data_docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        actions.append(gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=["site"]))
    source = ctx.data_sources.add_pandas(suite.name)
    batch = source.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe("batch")
    gx_suite = ctx.suites.add(gx.ExpectationSuite(**suite.document))
    definition = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite))
    checkpoint = ctx.checkpoints.add(gx.Checkpoint(
        name=suite.name, validation_definitions=[definition], actions=actions,
        result_format={"result_format": "BASIC"},
    ))
    with _ONE_GX_RUN_AT_A_TIME:
        batch_parameters = {"dataframe": data}
        try:
            run = checkpoint.run(batch_parameters=batch_parameters,
                                 expectation_parameters=dict(parameters))
        finally:
            batch_parameters.clear()
            _release_batch_data(source)
    (validation,) = run.run_results.values()
    failures = tuple(_failure(e, context or {}) for e in validation.results if not e.success)
    evaluated = len(validation.results)
    return SuiteResult(
        suite=suite.name, suite_version=suite.label, success=bool(validation.success),
        evaluated=evaluated, passed=evaluated - len(failures), rows=frame.height,
        failures=failures, seconds=round(time.perf_counter() - started, 3),
    )


# ---------------------------------------------------------------------------------------------
# Data Docs in storage


def _static_relinked(html: str, page_key: str) -> str:
    to_static = posixpath.relpath(STATIC_PREFIX, posixpath.dirname(page_key))
    return _STATIC_LINK.sub(lambda m: f"{m.group(1)}{to_static}/", html)


def upload_data_docs(storage: Storage, local_dir: Path, prefix: str) -> str:
    """Upload the Data Docs site built in ``local_dir`` under ``prefix`` (its pages) and
    ``reports/data_docs/static/`` (the static files, once for every run, with the pages'
    links rewritten to them). Returns the key of the site's ``index.html``."""
    present = {info.key for info in storage.list(STATIC_PREFIX)}
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(local_dir).as_posix()
        if relative.startswith("static/"):
            key = STATIC_PREFIX + relative[len("static/"):]
            if key not in present:
                # AlreadyExists: another run stored the same file meanwhile.
                with contextlib.suppress(AlreadyExists):
                    storage.put_if_absent(key, path.read_bytes())
            continue
        key = prefix + relative
        data = path.read_bytes()
        if path.suffix == ".html":
            data = _static_relinked(data.decode("utf-8"), key).encode("utf-8")
        storage.write_bytes(key, data)
    return prefix + "index.html"


def _validated_with_docs(
    storage: Storage, frame: pl.DataFrame, suite: Suite, parameters: Mapping[str, Any],
    context: Mapping[str, Any], docs_prefix: str,
) -> SuiteResult:
    with tempfile.TemporaryDirectory(prefix="registry-data-docs-") as tmp:
        result = suite_result(frame, suite, parameters, context=context,
                              data_docs_dir=Path(tmp))
        index = upload_data_docs(storage, Path(tmp), docs_prefix)
    return SuiteResult(**{**asdict(result), "failures": result.failures, "data_docs": index})


# ---------------------------------------------------------------------------------------------
# The staged gate's scope (pure)

COMPLETE_LIST_SCOPE = "complete_list"
# Checks of a column's range or date window. A column empty throughout the batch has no value
# for them to judge, and Great Expectations fails them with an observed value of None.
_RANGE_CHECKS = frozenset({
    "expect_column_min_to_be_between",
    "expect_column_max_to_be_between",
    "expect_column_mean_to_be_between",
})


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


# ---------------------------------------------------------------------------------------------
# The staged-batch gate (ingest)


def batch_docs_prefix(dataset: str, region: str, batch_id: str) -> str:
    """Where the Data Docs of a staged batch's validation live."""
    return f"reports/batches/{dataset}/{region}/{batch_id}/{DATA_DOCS_DIR}"


def previous_full_batch(storage: Storage, dataset: str, region: str, batch_id: str
                        ) -> PreviousBatch | None:
    """The latest replace-mode batch of ``region`` and ``dataset`` landed before ``batch_id``
    (batch ids begin with the landing second) that counts for publication (released, or held
    and then released), or None."""
    candidates = [
        r for r in ledger.publishable(ledger.batch_records(storage, dataset=dataset,
                                                           region=region),
                                      ledger.released_ids(storage))
        if r.batch_id < batch_id and r.mode == "replace"
    ]
    if not candidates:
        return None
    latest = max(candidates, key=lambda r: r.order)
    return PreviousBatch(latest.batch_id, latest.accepted)


def _bound_reason(bounds: Mapping[str, Any], observed: int, config: QualityConfig
                  ) -> tuple[str, str, str]:
    """(code, zh, en) saying which row-count bound a batch of ``observed`` rows broke."""
    previous: PreviousBatch | None = bounds["previous"]
    if observed < bounds["floor"]:
        return ("batch_rows_below_floor", f"低于下限 {bounds['floor']} 行",
                f"below the floor of {bounds['floor']} rows")
    assert previous is not None  # otherwise only the floor bounds the count
    if observed < bounds["min_rows"]:
        pct = f"{config.row_counts.replace_min_ratio:.0%}"
        return ("batch_rows_below_previous",
                f"全量替换批次不足上一完整批次（{previous.batch_id}，{previous.accepted} 行）的 "
                f"{pct}，可能是导出不完整；若确属实情，请联系数据工程师放行",
                f"a replace batch below {pct} of the previous full batch ({previous.batch_id}, "
                f"{previous.accepted} rows): a truncated export? If it is right, ask a data "
                "engineer to release it")
    pct = f"{config.row_counts.replace_max_ratio:.0%}"
    return ("batch_rows_above_previous",
            f"全量替换批次超过上一完整批次（{previous.accepted} 行）的 {pct}",
            f"a replace batch above {pct} of the previous full batch ({previous.accepted} rows)")


def staged_batch_gate(
    storage: Storage, settings: Settings, staged: pl.DataFrame, *, region: str, dataset: str,
    batch_id: str, mode: str, today: date,
) -> SuiteResult:
    """Validate every staged row of a batch against the dataset's staged suite in the batch's
    scope (:func:`suite_in_scope`: whole-list checks for replace batches only, no range check
    of an optional column left empty), with row-count bounds from the configured floor and,
    for a replace batch, the region's previous released full batch. Builds the run's Data
    Docs and stores them (:func:`batch_docs_prefix`). A failed result means the batch must be
    held; the failures say why, in zh/en, and ``skipped`` says what was not run and why."""
    started = time.perf_counter()
    config = load_quality_config(settings.config_dir)
    required = load_contracts(settings.schemas_dir)[dataset].required_columns
    suite, skipped = suite_in_scope(
        load_suite(settings.expectations_dir, config.suites.staged[dataset]), mode=mode,
        empty_optional=empty_optional_columns(staged, required))
    previous = (previous_full_batch(storage, dataset, region, batch_id)
                if mode == "replace" else None)
    bounds = row_count_bounds(config, dataset, mode, previous)
    params = staged_suite_parameters(config, region=region, dataset=dataset, today=today,
                                     bounds=bounds)
    observed = staged.height
    code, zh, en = (_bound_reason(bounds, observed, config)
                    if observed < bounds["min_rows"] or (
                        bounds["max_rows"] is not None and observed > bounds["max_rows"])
                    else ("", "", ""))
    context = {"bound_zh": zh, "bound_en": en,
               "max_value": bounds["max_rows"] if bounds["max_rows"] is not None else "∞"}
    result = _validated_with_docs(storage, staged, suite, params, context,
                                  batch_docs_prefix(dataset, region, batch_id))
    failures = tuple(
        CheckFailure(code, f.expectation, f.column, f.observed, f.message_zh, f.message_en)
        if f.expectation == "expect_table_row_count_to_be_between" and code else f
        for f in result.failures
    )
    # The whole gate: the previous batch looked up, the suite run, the Data Docs stored.
    return replace(result, failures=failures, skipped=skipped,
                   seconds=round(time.perf_counter() - started, 3))


def gate_record_fields(result: SuiteResult) -> dict[str, Any]:
    """What a batch record carries of its gate: ``status`` (``held`` when the suite failed,
    else ``released``), ``held_reasons`` (the distinct failure codes) and ``quality`` (the
    whole result, reasons in zh/en, and the Data Docs key)."""
    return {
        "status": "released" if result.success else "held",
        "held_reasons": [] if result.success else result.codes,
        "quality": result.as_dict(),
    }


def held_receipt_fields(record: ledger.BatchRecord) -> dict[str, Any] | None:
    """The part of a council's receipt that says its batch (``record``, as committed) is held
    and why, in Chinese and English; None when the batch is not held."""
    if record.status != "held":
        return None
    return {
        "batch_status": "held",
        "held_zh": "本批次已暂扣：数据已接收，但未通过批次质量检查，在数据工程师核实放行或您重新"
                   "上传之前不会发布。原因如下。",
        "held_en": "This batch is held: its rows were received, but it failed the batch quality "
                   "checks and will not be published until a data engineer releases it or you "
                   "upload again. Reasons below.",
        "held_reasons": record.reasons,
    }


# ---------------------------------------------------------------------------------------------
# The registry gate (publication)


def registry_results(
    storage: Storage, settings: Settings, tables: Mapping[str, pl.DataFrame],
    model: ScoreModel, snapshot_id: str,
) -> list[SuiteResult]:
    """Run the registry suites on the whole published tables (``merchants``, ``products``) of
    the would-be snapshot ``snapshot_id``, and store the run's Data Docs (one site per table)
    under the snapshot's report folder when every suite passes, else under
    ``reports/refused/{snapshot_id}/``. Writes nothing else."""
    config = load_quality_config(settings.config_dir)
    params = registry_suite_parameters(model)
    frames = {
        "merchants": registry_check_frame(tables["merchants"], model),
        "products": tables["products"],
    }
    with tempfile.TemporaryDirectory(prefix="registry-data-docs-") as tmp:
        results = [
            suite_result(frames[table], load_suite(settings.expectations_dir, name), params,
                         data_docs_dir=Path(tmp) / table)
            for table, name in config.suites.registry.items()
        ]
        passed = all(r.success for r in results)
        prefix = registry_docs_prefix(snapshot_id) if passed else refused_docs_prefix(snapshot_id)
        return [
            SuiteResult(**{**asdict(result), "failures": result.failures,
                           "data_docs": upload_data_docs(storage, Path(tmp) / table,
                                                         f"{prefix}{table}/")})
            for table, result in zip(config.suites.registry, results, strict=True)
        ]


def registry_docs_prefix(snapshot_id: str) -> str:
    """Data Docs of the registry gate of a published snapshot (linked from its report)."""
    return report_prefix(snapshot_id) + DATA_DOCS_DIR


def refused_docs_prefix(snapshot_id: str) -> str:
    """Data Docs of a registry gate that refused the would-be snapshot ``snapshot_id``."""
    return f"{REFUSED_PREFIX}{snapshot_id}/{DATA_DOCS_DIR}"


# ---------------------------------------------------------------------------------------------
# Held batches and releases


@dataclass(frozen=True)
class BatchListing:
    """A committed batch as ``registry batches list`` shows it."""

    batch_id: str
    dataset: str
    region: str
    mode: str
    status: str  # released | held | held, released
    accepted: int
    held_reasons: tuple[str, ...] = ()
    reasons_en: tuple[str, ...] = ()
    release: dict[str, Any] | None = None
    data_docs: str | None = None


def batch_listings(storage: Storage, *, held_only: bool = False) -> list[BatchListing]:
    """Every committed batch (or only those held and not released), with its gate outcome and
    release record, sorted by region, dataset and ledger order."""
    released = ledger.released_ids(storage)
    records = (ledger.held_unreleased(ledger.batch_records(storage), released) if held_only
               else sorted(ledger.batch_records(storage),
                           key=lambda r: (r.region, r.dataset, r.order)))
    listed = []
    for record in records:
        held = record.status == "held"
        is_released = held and record.batch_id in released
        release = ledger.read_release(storage, record) if is_released else None
        listed.append(BatchListing(
            batch_id=record.batch_id, dataset=record.dataset, region=record.region,
            mode=record.mode,
            status=("held, released" if is_released else "held") if held else record.status,
            accepted=record.accepted,
            held_reasons=tuple(record.held_reasons),
            reasons_en=tuple(f["message_en"] for f in record.reasons),
            release=release.model_dump(mode="json") if release else None,
            data_docs=record.data_docs,
        ))
    return listed


class ReleaseRefused(ValueError):
    """The batch cannot be released: unknown, not held, or already released."""


def release_batch(storage: Storage, batch_id: str, *, reason: str, by: str,
                  now: datetime | None = None) -> dict[str, Any]:
    """Release a held batch so that it counts in the next publication: record who, when and
    why (:class:`registry.ledger.Release`, create-if-absent), and return the release.

    Raises :class:`ReleaseRefused` for an unknown batch id, a batch that is not held, one
    already released, or an empty reason or name."""
    if not reason.strip() or not by.strip():
        raise ReleaseRefused("a release needs a reason and who releases it")
    matches = ledger.find_batch(storage, batch_id)
    if not matches:
        raise ReleaseRefused(f"no committed batch has the id {batch_id!r}")
    if len(matches) > 1:
        raise ReleaseRefused(f"batch id {batch_id!r} names {len(matches)} batches")
    (record,) = matches
    if record.status != "held":
        raise ReleaseRefused(f"batch {batch_id} is not held (status {record.status!r})")
    release = ledger.Release(
        batch_id=batch_id, dataset=record.dataset, region=record.region, released_by=by,
        released_at=now or datetime.now(UTC), reason=reason, held_reasons=record.held_reasons,
    )
    try:
        ledger.write_release(storage, release)
    except AlreadyExists:
        earlier = ledger.read_release(storage, record)
        raise ReleaseRefused(
            f"batch {batch_id} was already released by "
            f"{earlier.released_by if earlier else '?'} at "
            f"{earlier.released_at.isoformat() if earlier else '?'}") from None
    return release.model_dump(mode="json")


# ---------------------------------------------------------------------------------------------
# Scorecards


def region_scorecards(
    records: Iterable[ledger.BatchRecord], regions: RegionConfig, *, run_batches: Iterable[str],
    released: Iterable[str], previous: Mapping[str, Mapping[str, Any]], top: int, at: datetime,
) -> dict[str, dict[str, Any]]:
    """Per configured region, the data-quality scorecard of one ingest run (pure).

    Over the batches of ``run_batches`` (this run's): ``rows_received``, ``rows_accepted``,
    ``accepted_pct``, ``checks_evaluated``, ``checks_passed``, ``checks_passed_pct`` (batch
    gate expectations) and ``top_failing_checks`` (the ``top`` most frequent row quarantine and
    batch gate failure codes with counts, most frequent first). ``held_batches`` lists every
    batch of the region held now (not in ``released``). ``trend`` compares with ``previous``
    (the region's last scorecard): the change of accepted_pct, checks_passed_pct and held
    batches, None for a first card or a value missing on either side."""
    in_run = set(run_batches)
    records = list(records)
    cards: dict[str, dict[str, Any]] = {}
    failing: dict[str, Counter[str]] = {code: Counter() for code in regions.regions}
    for code, region in regions.regions.items():
        cards[code] = {
            "region": code, "name_zh": region.name_zh, "name_en": region.name_en,
            "at": at.isoformat(), "batches": 0, "rows_received": 0, "rows_accepted": 0,
            "checks_evaluated": 0, "checks_passed": 0, "held_batches": [],
        }
    held = {r.batch_id for r in ledger.held_unreleased(records, set(released))}
    for record in sorted(records, key=lambda r: (r.region, r.dataset, r.order)):
        card = cards.get(record.region)
        if card is None:
            continue
        quality = record.quality or {}
        if record.batch_id in held:
            card["held_batches"].append({
                "batch_id": record.batch_id, "dataset": record.dataset,
                "reasons": list(record.held_reasons), "data_docs": record.data_docs,
            })
        if record.batch_id not in in_run:
            continue
        card["batches"] += 1
        card["rows_received"] += record.rows_in
        card["rows_accepted"] += record.accepted
        card["checks_evaluated"] += int(quality.get("evaluated") or 0)
        card["checks_passed"] += int(quality.get("passed") or 0)
        failing[record.region].update(record.error_counts)
        failing[record.region].update(f["code"] for f in quality.get("failures") or ())
    for code, card in cards.items():
        card["accepted_pct"] = (round(100 * card["rows_accepted"] / card["rows_received"], 1)
                                if card["rows_received"] else None)
        card["checks_passed_pct"] = (
            round(100 * card["checks_passed"] / card["checks_evaluated"], 1)
            if card["checks_evaluated"] else None)
        card["top_failing_checks"] = [
            {"code": c, "count": n}
            for c, n in sorted(failing[code].items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        ]
        before = previous.get(code)
        card["trend"] = None if before is None else {
            "previous_at": before.get("at"),
            **{f"{name}_change": _change(card.get(name), before.get(name))
               for name in ("accepted_pct", "checks_passed_pct")},
            "held_batches_change": len(card["held_batches"]) - len(
                before.get("held_batches") or []),
        }
    return cards


def _change(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else round(now - before, 1)


def scorecard_key(region: str, run_id: str) -> str:
    return f"{SCORECARDS_PREFIX}{region}/{run_id}.json"


def latest_scorecard_key(region: str) -> str:
    return f"{SCORECARDS_PREFIX}{region}/latest.json"


def write_scorecards(storage: Storage, settings: Settings, run_batches: Sequence[str],
                     *, now: datetime | None = None) -> dict[str, str]:
    """Write each region's scorecard of the ingest run that staged ``run_batches`` to
    ``reports/scorecards/{region}/{run_id}.json`` and ``.../latest.json``; return region ->
    key. The trend is against each region's previous ``latest.json``."""
    from registry.config.regions import load_regions

    now = now or datetime.now(UTC)
    config = load_quality_config(settings.config_dir)
    regions = load_regions(settings.config_dir)
    records = ledger.batch_records(storage)
    released = ledger.released_ids(storage)
    previous = {}
    for code in regions.regions:
        with contextlib.suppress(NotFound):
            previous[code] = json.loads(storage.read_bytes(latest_scorecard_key(code)))
    cards = region_scorecards(records, regions, run_batches=run_batches, released=released,
                              previous=previous, top=config.scorecards.top_failing_checks, at=now)
    run_id = now.strftime("%Y%m%dT%H%M%S%fZ")
    keys = {}
    for code, card in cards.items():
        data = json.dumps(card, ensure_ascii=False, indent=2).encode("utf-8")
        storage.write_bytes(scorecard_key(code, run_id), data)
        storage.write_bytes(latest_scorecard_key(code), data)
        keys[code] = scorecard_key(code, run_id)
    return keys


__all__ = [
    "BatchListing",
    "CheckFailure",
    "QualityConfig",
    "ReleaseRefused",
    "SkippedCheck",
    "Suite",
    "SuiteResult",
    "batch_listings",
    "empty_optional_columns",
    "gate_record_fields",
    "held_receipt_fields",
    "load_quality_config",
    "load_suite",
    "region_scorecards",
    "registry_check_frame",
    "registry_results",
    "release_batch",
    "staged_batch_gate",
    "suite_in_scope",
    "suite_result",
    "suite_versions",
    "upload_data_docs",
    "write_scorecards",
]
