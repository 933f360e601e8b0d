"""Running one suite on one frame with Great Expectations: :func:`suite_result` returns a typed
:class:`SuiteResult`, with a reason in Chinese and English for every failed expectation.

Speed (1M rows). Great Expectations validates pandas only. The frame handed to it holds every
row of the batch but only the columns the suite names, as Arrow-backed pandas (zero-copy from
polars). The batch fingerprint, which hashes every cell, is turned off, and the Data Docs
templates are compiled once per process (:mod:`registry._compat.gx`). Nothing is sampled, and
no expectation is skipped for speed: only by scope (:func:`registry.quality.suites.suite_in_scope`).

Speed (small batches, the common case). The fixed cost of a run is GX's own bookkeeping, so the
suite is validated on the batch directly (``Batch.validate``), not through a validation
definition and a checkpoint: those are stored and then checked for freshness twice per run,
which re-reads the suite from the store, and they change nothing in the result or the Data Docs
(the run's result is stored and its site built here, as the checkpoint's Data Docs action did).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from registry._compat import gx as gx_internals
from registry.quality.suites import SkippedCheck, Suite


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
        **{k: _jsonable(v) for k, v in kwargs.items()},
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


_SITE = "site"


def _build_data_docs(ctx: Any, validation: Any, suite_name: str) -> None:
    """Store ``validation`` (the result of the suite ``suite_name``, which ``ctx`` holds) as a
    run of now and build its pages and the index into the context's site: what a checkpoint
    with an ``UpdateDataDocsAction`` stores and builds, with the same run metadata."""
    from great_expectations.constants import DATAFRAME_REPLACEMENT_STR
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    run_id = RunIdentifier(run_time=datetime.now(UTC))
    validation.meta["run_id"] = run_id
    validation.meta["validation_time"] = run_id.run_time
    validation.meta["batch_parameters"] = {"dataframe": DATAFRAME_REPLACEMENT_STR}
    suite_id = ExpectationSuiteIdentifier(name=suite_name)
    key = ValidationResultIdentifier(expectation_suite_identifier=suite_id, run_id=run_id,
                                     batch_identifier=validation.batch_id)
    ctx.validation_results_store.set(key, validation)
    ctx.build_data_docs(site_names=[_SITE], resource_identifiers=[key, suite_id])


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
    gx = gx_internals.patched()
    missing = [c for c in suite.columns() if c not in frame.columns]
    if missing:
        raise KeyError(f"suite {suite.name} reads column(s) the frame lacks: {missing}")
    started = time.perf_counter()
    data = frame.select(suite.columns()).to_pandas(use_pyarrow_extension_array=True)
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = {"globally": False}
    if data_docs_dir is not None:
        ctx.add_data_docs_site(site_name=_SITE, site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(data_docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
    source = ctx.data_sources.add_pandas(suite.name)
    definition = source.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe(
        "batch")
    gx_suite = gx.ExpectationSuite(**suite.document)
    if data_docs_dir is not None:
        gx_suite = ctx.suites.add(gx_suite)  # the site's page of the suite is built from the store
    with gx_internals.ONE_RUN_AT_A_TIME:
        batch_parameters = {"dataframe": data}
        try:
            validation = definition.get_batch(batch_parameters=batch_parameters).validate(
                gx_suite, result_format={"result_format": "BASIC"},
                expectation_parameters=dict(parameters))
        finally:
            batch_parameters.clear()
            gx_internals.release_batch_data(source)
        if data_docs_dir is not None:
            # Within the lock: the pages share one template cache (registry._compat.gx).
            _build_data_docs(ctx, validation, suite.name)
    failures = tuple(_failure(e, context or {}) for e in validation.results if not e.success)
    evaluated = len(validation.results)
    return SuiteResult(
        suite=suite.name, suite_version=suite.label, success=bool(validation.success),
        evaluated=evaluated, passed=evaluated - len(failures), rows=frame.height,
        failures=failures, seconds=round(time.perf_counter() - started, 3),
    )
