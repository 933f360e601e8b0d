"""The two gates, at the I/O edge: :func:`staged_batch_gate` validates a staged batch at ingest
(a failed result holds the batch), :func:`registry_results` the would-be snapshot's tables at
publication. Both give each run Data Docs of its own (:mod:`registry.quality.data_docs`): the
batch gate keeps its run among an ingest run's pending Data Docs, built and stored together at
the end of the ingest run, or stores them at once; the registry gate stores its tables' at
once, built together. What a batch record and a council's receipt carry of the gate comes from
:func:`gate_record_fields` and :func:`held_receipt_fields`."""

from __future__ import annotations

import time
from collections.abc import Mapping
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
from registry.quality.runner import CheckFailure, PendingDataDocs, SuiteResult
from registry.quality.suites import (
    PreviousBatch,
    empty_optional_columns,
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
    candidates = [
        r for r in ledger.publishable(ledger.batch_records(storage, dataset=dataset,
                                                           region=region),
                                      ledger.released_ids(storage))
        if r.mode == "replace"
    ]
    latest = ledger.latest_before(candidates, order)
    return PreviousBatch(latest.batch_id, latest.accepted) if latest else None


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


def row_count_context(bounds: Mapping[str, Any], observed: int, config: QualityConfig
                      ) -> tuple[str, dict[str, Any]]:
    """The code of the row-count bound a batch of ``observed`` rows broke ("" when none) and
    what the row-count check's message templates need of it (``bound_zh``, ``bound_en``,
    ``max_value``)."""
    code, zh, en = (_bound_reason(bounds, observed, config)
                    if observed < bounds["min_rows"] or (
                        bounds["max_rows"] is not None and observed > bounds["max_rows"])
                    else ("", "", ""))
    return code, {"bound_zh": zh, "bound_en": en,
                  "max_value": bounds["max_rows"] if bounds["max_rows"] is not None else "∞"}


def staged_batch_gate(
    storage: Storage, settings: Settings, staged: pl.DataFrame, *, region: str, dataset: str,
    batch_id: str, mode: str, today: date, order: tuple[datetime, str, str],
    data_docs: PendingDataDocs | None = None,
) -> SuiteResult:
    """Validate every staged row of a batch against the dataset's staged suite in the batch's
    scope (:func:`~registry.quality.suites.suite_in_scope`: whole-list checks for replace
    batches only, no range check of an optional column left empty), with row-count bounds from
    the configured floor and, for a replace batch, the region's previous released full batch
    in ledger ``order`` (:func:`registry.ledger.batch_order`).
    The run's Data Docs go under :func:`~registry.storage.layout.batch_docs_prefix`: kept in
    ``data_docs`` (the ingest run's, stored at its end: the result's ``data_docs`` key names the
    page they will have), or, without it, built and stored now. A failed result means the batch
    must be held; the failures say why, in zh/en, and ``skipped`` says what was not run and
    why."""
    started = time.perf_counter()
    config = load_quality_config(settings.config_dir)
    required = load_contracts(settings.schemas_dir)[dataset].required_columns
    suite, skipped = suite_in_scope(
        load_suite(settings.expectations_dir, config.suites.staged[dataset]), mode=mode,
        empty_optional=empty_optional_columns(staged, required))
    previous = (previous_full_batch(storage, dataset, region, order)
                if mode == "replace" else None)
    bounds = row_count_bounds(config, dataset, mode, previous)
    params = staged_suite_parameters(config, region=region, dataset=dataset, today=today,
                                     bounds=bounds)
    code, context = row_count_context(bounds, staged.height, config)
    prefix = batch_docs_prefix(dataset, region, batch_id)
    pending = data_docs if data_docs is not None else PendingDataDocs()
    result = runner.suite_result(staged, suite, params, context=context,
                                 data_docs=pending.at(prefix))
    if data_docs is None:
        data_docs_module.upload_data_docs(storage, pending)
    failures = tuple(
        CheckFailure(code, f.expectation, f.column, f.observed, f.message_zh, f.message_en)
        if f.expectation == "expect_table_row_count_to_be_between" and code else f
        for f in result.failures
    )
    # The whole gate: the previous batch looked up, the suite run (the Data Docs stored, when
    # they are not left to the end of the ingest run).
    return replace(result, failures=failures, skipped=skipped,
                   data_docs=data_docs_module.site_index_key(prefix),
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
    # Kept at the table's folder; where that folder goes depends on every suite's verdict.
    pending = PendingDataDocs()
    results = [
        runner.suite_result(frames[table], load_suite(settings.expectations_dir, name), params,
                            data_docs=pending.at(f"{table}/"))
        for table, name in config.suites.registry.items()
    ]
    passed = all(r.success for r in results)
    prefix = registry_docs_prefix(snapshot_id) if passed else refused_docs_prefix(snapshot_id)
    indexes = data_docs_module.upload_data_docs(storage, pending, under=prefix)
    return [replace(result, data_docs=indexes[f"{table}/"])
            for table, result in zip(config.suites.registry, results, strict=True)]
