"""Running one suite on one frame with Great Expectations: :func:`suite_result` returns a typed
:class:`SuiteResult`, with a reason in Chinese and English for every failed expectation; and
building the Data Docs of the runs gathered meanwhile (:class:`PendingDataDocs`), together.

Speed (1M rows). Great Expectations validates pandas only. The frame handed to it holds every
row of the batch but only the columns the suite names: text, dates and flags Arrow-backed
(zero-copy from polars), numbers as NumPy columns, which GX compares vectorised
(:func:`_pandas_frame`). A batch is filtered by each row condition once per run, the batch
fingerprint, which hashes every cell, is turned off, and the Data Docs templates are compiled
once per process (:mod:`registry._compat.gx`). Nothing is sampled, and no expectation is
skipped for speed: only by scope (:func:`registry.quality.suites.suite_in_scope`).

Speed (small batches, the common case). The fixed cost of a run is GX's own bookkeeping, so:

- the suite is validated on the batch directly (``Batch.validate``), not through a validation
  definition and a checkpoint: those are stored and then checked for freshness twice per run,
  which re-reads the suite from the store, and they change nothing in the result or the Data
  Docs;
- one data context per process validates every run, with one pandas data source per suite
  name made on its first run: a context, a source, an asset and a batch definition each cost
  a rewrite of GX's project configuration as YAML, four per run when each run made its own;
- Data Docs are built for many runs at once (an ingest run's batches, a publication's tables)
  by :func:`data_docs_sites`, in one context, each suite's page rendered once and GX's static
  files left to the upload, which stores them once; each run still gets a site of its own.
"""

from __future__ import annotations

import functools
import gc
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import polars as pl

from registry._compat import gx as gx_internals
from registry.quality.suites import SkippedCheck, Suite

# A frame at least this long is let go of at once after its run (see :func:`suite_result`); a
# full collection costs tens of milliseconds, more than small batches are worth.
COLLECT_AFTER_ROWS = 100_000


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
    return check_failure(config.type, dict(config.kwargs), config.meta or {},
                         expectation.result or {}, context,
                         error=(expectation.exception_info or {}).get("exception_message"))


def check_failure(expectation_type: str, kwargs: Mapping[str, Any], meta: Mapping[str, Any],
                  result: Mapping[str, Any], context: Mapping[str, Any],
                  error: str | None = None) -> CheckFailure:
    """The reason for one failed expectation (its ``kwargs`` with parameters resolved, its
    ``meta`` with the code and message templates, and Great Expectations' ``result``:
    ``observed_value``, ``unexpected_count``, ``unexpected_percent``). The gate's one way of
    wording a failure, also used by :mod:`registry.quality.preflight`."""
    observed = result.get("observed_value")
    column = kwargs.get("column") or ", ".join(kwargs.get("column_list") or []) or None
    unexpected_percent = result.get("unexpected_percent")
    mostly = kwargs.get("mostly")
    values = {
        **context,
        # An unset bound (None) leaves the context's wording of it ("∞") in place.
        **{k: _jsonable(v) for k, v in kwargs.items() if v is not None or k not in context},
        "column": column,
        "observed": _jsonable(observed),
        "unexpected_count": result.get("unexpected_count"),
        "unexpected_percent": unexpected_percent,
        "observed_pct": (100 - unexpected_percent) if unexpected_percent is not None else None,
        "ceiling_pct": (1 - mostly) * 100 if isinstance(mostly, (int, float)) else None,
        "condition": kwargs.get("row_condition"),
    }
    message_zh = _format(meta.get("message_zh", expectation_type), values)
    message_en = _format(meta.get("message_en", expectation_type), values)
    if error:
        message_zh += f"（检查无法执行：{error}）"
        message_en += f" (the check could not run: {error})"
    return CheckFailure(
        code=meta.get("code", expectation_type), expectation=expectation_type, column=column,
        observed=_jsonable(observed), message_zh=message_zh, message_en=message_en,
    )


@dataclass(frozen=True)
class ValidationRun:
    """One suite run kept for its Data Docs: the suite document as run (in the batch's scope),
    Great Expectations' result of it, and when it ran."""

    suite: dict[str, Any]
    validation: Any  # great_expectations' ExpectationSuiteValidationResult
    run_time: datetime


@dataclass(frozen=True)
class DataDocsTarget:
    """Where the Data Docs of one run go: among the ``pending`` runs, at ``prefix``."""

    pending: PendingDataDocs
    prefix: str

    def keep(self, run: ValidationRun) -> None:
        self.pending.add(self.prefix, run)


class PendingDataDocs:
    """The runs whose Data Docs are still to be built, each with the storage prefix of its own
    site: what an ingest run (or a publication) gathers, so that the sites are built together
    at its end (:func:`registry.quality.data_docs.upload_data_docs`). A second run kept at the
    same prefix replaces the first (a retried upload is gated again). Safe to add to from
    several threads; holds no frame, only results (a few kilobytes a run)."""

    def __init__(self) -> None:
        self._runs: dict[str, ValidationRun] = {}
        self._lock = threading.Lock()

    def at(self, prefix: str) -> DataDocsTarget:
        """Where :func:`suite_result` keeps a run whose site goes under ``prefix``."""
        return DataDocsTarget(self, prefix)

    def add(self, prefix: str, run: ValidationRun) -> None:
        with self._lock:
            self._runs[prefix] = run

    def runs(self) -> dict[str, ValidationRun]:
        """Prefix -> run, in the order they were first kept."""
        with self._lock:
            return dict(self._runs)

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)


# Suite name -> the whole-dataframe batch definition that validates frames for that suite, in
# the process's one data context (made on first use, within ONE_RUN_AT_A_TIME). The source and
# asset are named after the suite, so that the run's batch id (and its Data Docs page) says it.
_batch_definitions: dict[str, Any] = {}


def _batch_definition(gx: ModuleType, suite_name: str) -> Any:
    definition = _batch_definitions.get(suite_name)
    if definition is None:
        source = _validation_context(gx).data_sources.add_pandas(suite_name)
        definition = source.add_dataframe_asset(suite_name).add_batch_definition_whole_dataframe(
            "batch")
        _batch_definitions[suite_name] = definition
    return definition


@functools.cache
def _validation_context(gx: ModuleType) -> Any:
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    return context


def suite_result(
    frame: pl.DataFrame,
    suite: Suite,
    parameters: Mapping[str, Any],
    *,
    context: Mapping[str, Any] | None = None,
    data_docs: DataDocsTarget | None = None,
) -> SuiteResult:
    """Run ``suite`` on every row of ``frame`` with its suite ``parameters``.

    Only the columns the suite names are handed to Great Expectations (as Arrow-backed pandas).
    ``context`` fills the reasons' message templates beyond the expectation's own values. With
    ``data_docs``, the run is kept there for its Data Docs (built later, with others:
    :func:`data_docs_sites`). A column the suite names that the frame lacks raises
    ``KeyError``; an expectation that cannot run fails with its error in the reason.
    """
    gx = gx_internals.patched()
    missing = [c for c in suite.columns() if c not in frame.columns]
    if missing:
        raise KeyError(f"suite {suite.name} reads column(s) the frame lacks: {missing}")
    started = time.perf_counter()
    data = _pandas_frame(frame.select(suite.columns()))
    gx_suite = gx.ExpectationSuite(**suite.document)
    with gx_internals.ONE_RUN_AT_A_TIME:
        definition = _batch_definition(gx, suite.name)
        batch_parameters = {"dataframe": data}
        try:
            validation = definition.get_batch(batch_parameters=batch_parameters).validate(
                gx_suite, result_format={"result_format": "BASIC"},
                expectation_parameters=dict(parameters))
        finally:
            batch_parameters.clear()
            gx_internals.release_batch_data(definition.data_asset.datasource)
            del data
    if frame.height >= COLLECT_AFTER_ROWS:
        # GX's validator objects refer to each other, so the pandas copy of a batch lives on
        # until the cyclic collector next runs a full pass: over a table checked part by part,
        # copies piled up (4.7 GB after four parts of a million merchants, 2.4 GB with this).
        gc.collect()
    if data_docs is not None:
        data_docs.keep(ValidationRun(suite.document, validation, datetime.now(UTC)))
    failures = tuple(_failure(e, context or {}) for e in validation.results if not e.success)
    evaluated = len(validation.results)
    return SuiteResult(
        suite=suite.name, suite_version=suite.label, success=bool(validation.success),
        evaluated=evaluated, passed=evaluated - len(failures), rows=frame.height,
        failures=failures, seconds=round(time.perf_counter() - started, 3),
    )


def load_great_expectations() -> None:
    """Import Great Expectations, patched (:mod:`registry._compat.gx`), as the first run would:
    for a caller with idle time before it (seconds of imports)."""
    gx_internals.patched()


def _pandas_frame(frame: pl.DataFrame) -> Any:
    """``frame`` as the pandas frame Great Expectations validates: numbers as NumPy columns
    (nulls as NaN), which GX compares vectorised (on Arrow-backed numbers it calls a Python
    function per value: ``expect_column_values_to_be_between``); every other column
    Arrow-backed, without a copy when it is one chunk, and joined into one chunk when it is not.

    A table read back or built part by part holds many chunks, and Arrow's take on a column of
    many chunks first concatenates it: the row conditions of the registry suite took their rows
    16 times per run, each time concatenating every text column again. On tier M's 791,036
    merchants (25 chunks), the first run of the registry suite in a process took 3.2-3.4 s with
    its columns joined once and 4.0-4.1 s without, the process's peak RSS 1.83-1.84 GB against
    1.85-1.86 GB."""
    import pandas as pd
    import pyarrow as pa

    def numeric(arrow_type: pa.DataType) -> bool:
        return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type)

    def dtype(arrow_type: pa.DataType) -> Any:
        return None if numeric(arrow_type) else pd.ArrowDtype(arrow_type)

    table = frame.to_arrow()
    columns = [pa.chunked_array([column.combine_chunks()], type=column.type)
               if column.num_chunks > 1 and not numeric(column.type) else column
               for column in table.columns]
    return pa.Table.from_arrays(columns, schema=table.schema).to_pandas(types_mapper=dtype)


def data_docs_sites(runs: Mapping[str, ValidationRun], folder: Path) -> dict[str, Path]:
    """Build the Data Docs site of each run of ``runs`` (prefix -> run) in a folder of its own
    under ``folder``, and return prefix -> that folder. Each site is what a checkpoint with an
    ``UpdateDataDocsAction`` builds for its one run (the run stored with its time, its page,
    its suite's page and the index), but GX's static files are left out (the upload stores
    them once: :func:`registry._compat.gx.static_folder`). One data context builds them all,
    and a suite document's page is rendered once and copied to every other site that ran it."""
    from great_expectations.constants import DATAFRAME_REPLACEMENT_STR
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    gx = gx_internals.patched()
    ctx = gx.get_context(mode="ephemeral")
    sites: dict[str, Path] = {}
    suite_sites: dict[str, Path] = {}  # suite document (as JSON) -> the first site with its page
    with gx_internals.ONE_RUN_AT_A_TIME:  # the pages share one template cache (_compat.gx)
        for n, (prefix, run) in enumerate(runs.items()):
            validation = run.validation
            run_id = RunIdentifier(run_time=run.run_time)
            validation.meta["run_id"] = run_id
            validation.meta["validation_time"] = run_id.run_time
            validation.meta["batch_parameters"] = {"dataframe": DATAFRAME_REPLACEMENT_STR}
            suite_id = ExpectationSuiteIdentifier(name=run.suite["name"])
            key = ValidationResultIdentifier(expectation_suite_identifier=suite_id,
                                             run_id=run_id, batch_identifier=validation.batch_id)
            document = json.dumps(run.suite, sort_keys=True, default=str)
            shared = suite_sites.get(document)
            if shared is None:
                # The site's page of the suite is rendered from the store.
                ctx.suites.add_or_update(gx.ExpectationSuite(**run.suite))
            site = sites[prefix] = folder / str(n)
            ctx.validation_results_store.set(key, validation)
            gx_internals.build_site(ctx, site, [key] if shared else [key, suite_id],
                                    suite_pages_from=shared)
            # Each site's sections list the whole store: one run in it at a time, not all.
            ctx.validation_results_store.remove_key(key)
            suite_sites.setdefault(document, site)
    return sites
