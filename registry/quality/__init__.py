"""The batch-level quality gate (Great Expectations): staged batches and the published registry
are validated as a whole against the reviewed suites in ``expectations/``, Data Docs of every
run are stored under ``reports/``, and each ingest run leaves per-region scorecards.

Pandera judges each row at ingest; these suites judge a batch or a table: too few rows, a
replace-mode list far shorter than the region's previous full list, a key repeated, a column
suddenly empty, a pass rate that cannot be true, dates from another century; and, before
publication, a registry whose scores, grades or trusted flags disagree or that carries
personal data. The numbers that depend on the deployment are in ``config/quality.yaml``
(:mod:`registry.config.quality`).

- :mod:`.suites`: the suites as data, their parameters and the gate's scope (pure);
- :mod:`.runner`: one suite run on one frame, a typed result with reasons in zh/en;
- :mod:`.data_docs`: a run's Data Docs stored, static files once for every run;
- :mod:`.gates`: the staged-batch gate (ingest) and the registry gate (publication);
- :mod:`.held`: held batches listed, and released;
- :mod:`.scorecards`: each region's scorecard of an ingest run.

``great_expectations`` takes seconds to import: it is imported on first use
(:mod:`registry._compat.gx`), never when the ``registry`` package is. The names below load their
module on first use too, so that a command that lists or releases held batches does not load
the gate's runner, its templates and its suites.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.quality.data_docs import upload_data_docs
    from registry.quality.gates import (
        gate_record_fields,
        held_receipt_fields,
        registry_results,
        staged_batch_gate,
        suite_versions,
    )
    from registry.quality.held import BatchListing, ReleaseRefused, batch_listings, release_batch
    from registry.quality.runner import CheckFailure, SuiteResult, suite_result
    from registry.quality.scorecards import region_scorecards, write_scorecards
    from registry.quality.suites import (
        SkippedCheck,
        Suite,
        empty_optional_columns,
        load_suite,
        registry_check_frame,
        suite_in_scope,
    )

# Each public name and the module of this package that defines it.
_MODULE_OF = {
    "upload_data_docs": "data_docs",
    **dict.fromkeys(("gate_record_fields", "held_receipt_fields", "registry_results",
                     "staged_batch_gate", "suite_versions"), "gates"),
    **dict.fromkeys(("BatchListing", "ReleaseRefused", "batch_listings", "release_batch"),
                    "held"),
    **dict.fromkeys(("CheckFailure", "SuiteResult", "suite_result"), "runner"),
    **dict.fromkeys(("region_scorecards", "write_scorecards"), "scorecards"),
    **dict.fromkeys(("SkippedCheck", "Suite", "empty_optional_columns", "load_suite",
                     "registry_check_frame", "suite_in_scope"), "suites"),
}

__all__ = [
    "BatchListing",
    "CheckFailure",
    "ReleaseRefused",
    "SkippedCheck",
    "Suite",
    "SuiteResult",
    "batch_listings",
    "empty_optional_columns",
    "gate_record_fields",
    "held_receipt_fields",
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


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'registry.quality' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"registry.quality.{module}"), name)
