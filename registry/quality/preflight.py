"""What the staged-batch gate will say of an upload, judged from the file alone: the warnings of
``registry check``, before anything is uploaded.

The rules are the gate's own: the dataset's staged suite (``expectations/``) in the batch's
scope (:func:`~registry.quality.suites.suite_in_scope`), with the gate's suite parameters
(:func:`~registry.quality.suites.staged_suite_parameters`) and its wording
(:func:`~registry.quality.runner.check_failure`). Only the evaluation is done here, in polars,
because a pre-flight check must answer in a moment and Great Expectations takes seconds to
start. Expectation types this module does not evaluate are left to the gate, and so is what
needs the region's earlier batches: without them a replace list is bounded by the row-count
floor alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from registry.quality.runner import CheckFailure, check_failure
from registry.quality.suites import Suite

# expectation type -> (frame, resolved kwargs) -> (success, GX-like result)
_Evaluator = Callable[[pl.DataFrame, Mapping[str, Any]], tuple[bool, dict[str, Any]]]


def _not_null(frame: pl.DataFrame, kw: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    nulls = frame[kw["column"]].null_count()
    share = nulls / frame.height if frame.height else 0.0
    return (1 - share >= kw.get("mostly", 1.0),
            {"unexpected_count": nulls, "unexpected_percent": share * 100})


def _in_set(frame: pl.DataFrame, kw: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    values = frame[kw["column"]].drop_nulls()
    outside = int((~values.is_in(list(kw["value_set"]))).sum())
    share = outside / values.len() if values.len() else 0.0
    return (1 - share >= kw.get("mostly", 1.0),
            {"unexpected_count": outside, "unexpected_percent": share * 100})


def _unique(frame: pl.DataFrame, kw: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    columns = kw.get("column_list") or [kw["column"]]
    keys = frame.select(columns).drop_nulls()
    repeated = int(keys.is_duplicated().sum())
    return repeated == 0, {"unexpected_count": repeated,
                           "unexpected_percent": repeated / max(frame.height, 1) * 100}


def _distinct_equal(frame: pl.DataFrame, kw: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    seen = sorted(frame[kw["column"]].drop_nulls().unique().to_list())
    return set(seen) == set(kw["value_set"]), {"observed_value": seen}


def _between(statistic: str) -> _Evaluator:
    def evaluate(frame: pl.DataFrame, kw: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
        observed = getattr(frame[kw["column"]], statistic)()
        low, high = kw.get("min_value"), kw.get("max_value")
        ok = observed is None or ((low is None or observed >= low)
                                  and (high is None or observed <= high))
        return ok, {"observed_value": observed}
    return evaluate


def _row_count(frame: pl.DataFrame, kw: Mapping[str, Any]) -> tuple[bool, dict[str, Any]]:
    low, high = kw.get("min_value"), kw.get("max_value")
    ok = (low is None or frame.height >= low) and (high is None or frame.height <= high)
    return ok, {"observed_value": frame.height}


_EVALUATORS: dict[str, _Evaluator] = {
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_column_values_to_be_unique": _unique,
    "expect_compound_columns_to_be_unique": _unique,
    "expect_column_distinct_values_to_equal_set": _distinct_equal,
    "expect_column_min_to_be_between": _between("min"),
    "expect_column_max_to_be_between": _between("max"),
    "expect_column_mean_to_be_between": _between("mean"),
    "expect_table_row_count_to_be_between": _row_count,
}


def _resolved(value: Any, parameters: Mapping[str, Any]) -> Any:
    if isinstance(value, dict) and set(value) == {"$PARAMETER"}:
        return parameters.get(value["$PARAMETER"])
    return value


def gate_warnings(frame: pl.DataFrame, suite: Suite, parameters: Mapping[str, Any], *,
                  context: Mapping[str, Any] | None = None) -> list[CheckFailure]:
    """The failures the staged gate would report for ``frame`` (an upload's accepted rows as
    staged, without lineage) under ``suite`` (already in the batch's scope) and its suite
    ``parameters``, for the expectations evaluated here. ``context`` fills message templates
    as in :func:`registry.quality.runner.suite_result`. Pure; raises nothing for a column the
    frame lacks (that expectation is skipped)."""
    failures = []
    for expectation in suite.document["expectations"]:
        evaluate = _EVALUATORS.get(expectation["type"])
        kwargs = {k: _resolved(v, parameters) for k, v in expectation["kwargs"].items()}
        columns = kwargs.get("column_list") or ([kwargs["column"]] if "column" in kwargs else [])
        if evaluate is None or "row_condition" in kwargs or any(
                c not in frame.columns for c in columns):
            continue
        ok, result = evaluate(frame, kwargs)
        if not ok:
            failures.append(check_failure(expectation["type"], kwargs,
                                          expectation.get("meta") or {}, result, context or {}))
    return failures

