"""The two gates, at the I/O edge: :func:`staged_batch_gate` validates a staged batch at ingest
(a failed result holds the batch), :func:`registry_results` the would-be snapshot's tables at
publication. Both give each run Data Docs of its own (:mod:`registry.quality.data_docs`): the
batch gate keeps its run among an ingest run's pending Data Docs, built and stored together at
the end of the ingest run, or stores them at once; the registry gate stores its tables' at
once, built together. What a batch record and a council's receipt carry of the gate comes from
:func:`gate_record_fields` and :func:`held_receipt_fields`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any

import polars as pl

from registry import ledger
from registry.config.contracts import load_contracts
from registry.config.quality import QualityConfig, load_quality_config
from registry.config.score_model import ScoreModel
from registry.config.settings import Settings

# Called through their modules, so that a wrapper set on the module sees every call
# (bench/run.py times Great Expectations that way).
from registry.quality import data_docs as data_docs_module
from registry.quality import runner
from registry.quality.runner import CheckFailure, PendingDataDocs, SuiteResult, check_failure
from registry.quality.suites import (
    PreviousBatch,
    Suite,
    empty_optional_columns,
    gate_frame,
    load_suite,
    registry_check_frame,
    registry_suite_parameters,
    row_count_bounds,
    staged_suite_parameters,
    suite_in_scope,
    suite_labels,
)
from registry.storage import Storage
from registry.storage.layout import (
    batch_docs_prefix,
    refused_docs_prefix,
    registry_docs_prefix,
)


def suite_versions(settings: Settings) -> dict[str, str]:
    """Name -> ``{version}+{sha}`` of every suite the gates run (for the snapshot manifest)."""
    return suite_labels(load_quality_config(settings.config_dir), settings.expectations_dir)


# ---------------------------------------------------------------------------------------------
# The staged-batch gate (ingest)


def previous_full_batch(storage: Storage, dataset: str, region: str,
                        order: tuple[datetime, str, str]) -> PreviousBatch | None:
    """The latest replace-mode batch of ``region`` and ``dataset`` before the batch at ledger
    ``order`` (:func:`registry.ledger.batch_order`) that counts for publication (released, or
    held and then released), or None."""
    released = ledger.released_ids(storage)
    latest = ledger.latest_batch_before(
        storage, dataset, region, order,
        counts=lambda r: r.mode == "replace" and bool(ledger.publishable([r], released)))
    return PreviousBatch(latest.batch_id, latest.accepted) if latest else None


def _bound_reason(bounds: Mapping[str, Any], accepted: int, observed: int,
                  config: QualityConfig) -> tuple[str, str, str]:
    """(code, zh, en) saying which row-count bound a batch of ``accepted`` rows, ``observed``
    as a list (:func:`row_count_context`), broke."""
    previous: PreviousBatch | None = bounds["previous"]
    if accepted < bounds["floor"]:
        return ("batch_rows_below_floor", f"低于下限 {bounds['floor']} 行",
                f"below the floor of {bounds['floor']} rows")
    assert previous is not None  # otherwise only the floor bounds the count
    if observed < bounds["min_rows"]:
        pct = f"{config.row_counts.replace_min_ratio:.0%}"
        # A council used to sending changes only (upsert) sends one revoked filing this way:
        # say how a complete list revokes, and what a release would withdraw.
        return ("batch_rows_below_previous",
                f"全量替换批次不足上一完整批次（{previous.batch_id}，{previous.accepted} 行）的 "
                f"{pct}，可能是导出不完整。本地区按完整名单报送：如需撤销或修改个别备案，请上传"
                "完整名单并在其中修改这些备案的状态；只有名单确实只剩这些备案时，才请数据工程师"
                "放行，放行后名单中没有的备案将被撤下",
                f"a replace batch below {pct} of the previous full batch ({previous.batch_id}, "
                f"{previous.accepted} rows): a truncated export? This region sends complete "
                "lists: to revoke or change some filings, send the whole list with their status "
                "changed. Only if the list really is this short, ask a data engineer to release "
                "it: the filings it leaves out will then be withdrawn")
    pct = f"{config.row_counts.replace_max_ratio:.0%}"
    return ("batch_rows_above_previous",
            f"全量替换批次超过上一完整批次（{previous.accepted} 行）的 {pct}",
            f"a replace batch above {pct} of the previous full batch ({previous.accepted} rows)")


def row_count_context(bounds: Mapping[str, Any], accepted: int, config: QualityConfig,
                      kept_rows: int = 0) -> tuple[str, dict[str, Any]]:
    """The code of the row-count bound a batch of ``accepted`` rows broke ("" when none) and
    what the row-count check's message templates need of it (``bound_zh``, ``bound_en``,
    ``max_value``). A complete list's ``kept_rows`` (:func:`staged_batch_gate`) count as its
    rows against the previous list, not against the floor: a list without a usable row is
    held all the same."""
    observed = accepted + kept_rows
    code, zh, en = (_bound_reason(bounds, accepted, observed, config)
                    if accepted < bounds["floor"] or observed < bounds["min_rows"] or (
                        bounds["max_rows"] is not None and observed > bounds["max_rows"])
                    else ("", "", ""))
    if code and kept_rows:
        zh = f"另有 {kept_rows} 行被拒但保留原备案，计入名单共 {observed} 行；{zh}"
        en = (f"with the refused rows that keep their filings ({kept_rows}), the list has "
              f"{observed} rows; {en}")
    return code, {"bound_zh": zh, "bound_en": en,
                  "max_value": bounds["max_rows"] if bounds["max_rows"] is not None else "∞"}


def staged_batch_gate(
    storage: Storage, settings: Settings, staged: pl.DataFrame, *, region: str, dataset: str,
    batch_id: str, mode: str, today: date, order: tuple[datetime, str, str],
    data_docs: PendingDataDocs | None = None, kept_rows: int = 0,
) -> SuiteResult:
    """Validate every staged row of a batch against the dataset's staged suite in the batch's
    scope (:func:`~registry.quality.suites.suite_in_scope`: whole-list checks for replace
    batches only, no range check of an optional column left empty), with row-count bounds from
    the configured floor and, for a replace batch, the region's previous released full batch
    in ledger ``order`` (:func:`registry.ledger.batch_order`). A replace batch's ``kept_rows``
    (its refused rows that name a filing or a merchant, whose previous rows publication keeps:
    :func:`registry.publish.inputs.kept_rows`) count as rows of the list against the previous
    one (not against the floor, which counts usable rows): a typo withdraws
    nothing, so it is no sign of a truncated export, and holding the list for it would hold
    back every revocation in it.
    The run's Data Docs go under :func:`~registry.storage.layout.batch_docs_prefix`: kept in
    ``data_docs`` (the ingest run's, stored at its end: the result's ``data_docs`` key names the
    page they will have), or, without it, built and stored now. A failed result means the batch
    must be held; the failures say why, in zh/en, and ``skipped`` says what was not run and
    why."""
    started = time.perf_counter()
    config = load_quality_config(settings.config_dir)
    contract = load_contracts(settings.schemas_dir)[dataset]
    required = contract.required_columns
    staged = gate_frame(staged, contract)
    suite, skipped = suite_in_scope(
        load_suite(settings.expectations_dir, config.suites.staged[dataset]), mode=mode,
        empty_optional=empty_optional_columns(staged, required))
    previous = (previous_full_batch(storage, dataset, region, order)
                if mode == "replace" else None)
    bounds = row_count_bounds(config, dataset, mode, previous)
    # Great Expectations counts the staged rows: the list's bounds less the rows it keeps.
    params = staged_suite_parameters(config, region=region, dataset=dataset, today=today,
                                     bounds=_less(bounds, kept_rows))
    code, context = row_count_context(bounds, staged.height, config, kept_rows)
    prefix = batch_docs_prefix(dataset, region, batch_id)
    pending = data_docs if data_docs is not None else PendingDataDocs()
    result = runner.suite_result(staged, suite, params, context=context,
                                 data_docs=pending.at(prefix))
    if data_docs is None:
        data_docs_module.upload_data_docs(storage, pending)
    failures = tuple(
        _row_count_failure(suite, bounds, staged.height, code, context)
        if f.expectation == _ROW_COUNT and code else f
        for f in result.failures
    )
    # The whole gate: the previous batch looked up, the suite run (the Data Docs stored, when
    # they are not left to the end of the ingest run).
    return replace(result, failures=failures, skipped=skipped,
                   data_docs=data_docs_module.site_index_key(prefix),
                   seconds=round(time.perf_counter() - started, 3))


_ROW_COUNT = "expect_table_row_count_to_be_between"


def _less(bounds: Mapping[str, Any], rows: int) -> dict[str, Any]:
    """Row-count ``bounds`` less ``rows``, never below the floor."""
    return {**bounds, "min_rows": max(bounds["floor"], bounds["min_rows"] - rows),
            "max_rows": None if bounds["max_rows"] is None else bounds["max_rows"] - rows}


def _row_count_failure(suite: Suite, bounds: Mapping[str, Any], accepted: int, code: str,
                       context: Mapping[str, Any]) -> CheckFailure:
    """The row-count failure with the list's ``bounds`` (Great Expectations was given them less
    the rows kept, which ``context`` words) and the bound's own ``code``."""
    meta = next(e.get("meta") or {} for e in suite.document["expectations"]
                if e["type"] == _ROW_COUNT)
    failure = check_failure(_ROW_COUNT, {"min_value": bounds["min_rows"],
                                         "max_value": bounds["max_rows"]},
                            meta, {"observed_value": accepted}, context)
    return replace(failure, code=code)


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
    storage: Storage, settings: Settings,
    tables: Mapping[str, pl.DataFrame | Iterable[pl.DataFrame]], model: ScoreModel,
    snapshot_id: str,
) -> list[SuiteResult]:
    """Run the registry suites on every row of the published tables (``merchants``,
    ``products``) of the would-be snapshot ``snapshot_id``, and store the runs' Data Docs under
    the snapshot's report folder when every suite passes, else under
    ``reports/refused/{snapshot_id}/``. Writes nothing else.

    A table is a frame, or its parts in order (a large table read back part by part, in bounded
    memory): the suites check each row on its own but for the USCC's uniqueness, and parts
    hold disjoint USCC ranges (:mod:`registry.publish.tables`). Each part is a run with a
    Data Docs site of its own (``merchants/part-0002/``; ``merchants/`` for a table of one
    part); a table's result adds its parts' up, with every part's failures, and links the site
    of its first failing part (else its first)."""
    config = load_quality_config(settings.config_dir)
    params = registry_suite_parameters(model)
    # Kept at the part's folder; where that folder goes depends on every suite's verdict.
    pending = PendingDataDocs()
    runs: dict[str, list[tuple[str, SuiteResult]]] = {}
    for table, name in config.suites.registry.items():
        suite = load_suite(settings.expectations_dir, name)
        given = tables[table]
        parts = [given] if isinstance(given, pl.DataFrame) else given
        for i, part in enumerate(parts):
            frame = registry_check_frame(part, model) if table == "merchants" else part
            prefix = f"{table}/part-{i + 1:04d}/"
            runs.setdefault(table, []).append((prefix, runner.suite_result(
                frame, suite, params, data_docs=pending.at(prefix))))
            del frame, part
    passed = all(result.success for parts in runs.values() for _, result in parts)
    if all(len(parts) == 1 for parts in runs.values()):
        # One part per table: its site is the table's.
        pending = _moved(pending, {prefix: f"{table}/" for table, parts in runs.items()
                                   for prefix, _ in parts})
        runs = {table: [(f"{table}/", result) for _, result in parts]
                for table, parts in runs.items()}
    prefix = registry_docs_prefix(snapshot_id) if passed else refused_docs_prefix(snapshot_id)
    indexes = data_docs_module.upload_data_docs(storage, pending, under=prefix)
    return [_added_up(runs[table], indexes) for table in config.suites.registry]


def _moved(pending: PendingDataDocs, renamed: Mapping[str, str]) -> PendingDataDocs:
    moved = PendingDataDocs()
    for prefix, run in pending.runs().items():
        moved.add(renamed.get(prefix, prefix), run)
    return moved


def _added_up(parts: list[tuple[str, SuiteResult]], indexes: Mapping[str, str]
              ) -> SuiteResult:
    """One table's result from its parts': every part's failures (each part's reasons count
    its own rows), the parts' rows and seconds added up, and the Data Docs of the first part
    that failed, else of the first part."""
    results = [result for _, result in parts]
    shown = next((prefix for prefix, result in parts if not result.success), parts[0][0])
    first = results[0]
    if len(results) == 1:
        return replace(first, data_docs=indexes.get(shown))
    failures: dict[tuple[str, str], CheckFailure] = {}
    for result in results:
        for failure in result.failures:
            failures.setdefault((failure.code, failure.message_en), failure)
    return replace(
        first,
        success=all(r.success for r in results),
        passed=min(r.passed for r in results),
        rows=sum(r.rows for r in results),
        failures=tuple(failures.values()),
        seconds=round(sum(r.seconds for r in results), 3),
        data_docs=indexes.get(shown),
    )
