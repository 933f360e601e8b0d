"""The suites on tiny frames: each expectation a user relies on fails when it should, with a
stable code and a reason in Chinese and English; and the suites are the reviewed files."""

from __future__ import annotations

import gc
import json
from datetime import date

import pandas as pd
import polars as pl
import pytest
from registry_rows import registry_merchants
from staged_rows import complaint, evaluation, merchant, staged_frame

from registry.config.contracts import load_contracts
from registry.config.quality import load_quality_config
from registry.config.score_model import load_score_model
from registry.config.settings import Settings
from registry.quality import (
    empty_optional_columns,
    load_suite,
    registry_check_frame,
    suite_in_scope,
    suite_result,
    suite_versions,
)
from registry.quality.suites import (
    gate_frame,
    registry_suite_parameters,
    row_count_bounds,
    staged_suite_parameters,
)

SETTINGS = Settings(_env_file=None)
CONFIG = load_quality_config(SETTINGS.config_dir)
MODEL = load_score_model(SETTINGS.config_dir, 1).model
CONTRACTS = load_contracts(SETTINGS.schemas_dir)
TODAY = date(2026, 11, 30)


def _staged(dataset: str, frame: pl.DataFrame, region: str = "SH"):
    bounds = row_count_bounds(CONFIG, dataset, "upsert", None)
    params = staged_suite_parameters(CONFIG, region=region, dataset=dataset, today=TODAY,
                                     bounds=bounds)
    suite = load_suite(SETTINGS.expectations_dir, CONFIG.suites.staged[dataset])
    return suite_result(gate_frame(frame, CONTRACTS[dataset]), suite, params)


def test_the_date_window_judges_the_dates_written_not_no_end() -> None:
    """A validity without an end (长期, staged as 9999-12-31) passes the staged suite's latest
    plausible validity; a dated one past the window is still taken for a misread date."""
    def batch(valid_until: date) -> pl.DataFrame:
        return staged_frame("merchants", [
            merchant(filing_id="F1", valid_until=valid_until),
            merchant(filing_id="F2", valid_until=date(2027, 12, 31)),
        ]).with_columns(pl.lit("静安区").alias("district"), pl.lit("路").alias("address"))

    no_end = batch(date(9999, 12, 31))
    assert gate_frame(no_end, CONTRACTS["merchants"])["valid_until_dated"].to_list() == [
        None, date(2027, 12, 31)]
    assert _staged("merchants", no_end).success
    assert _staged("merchants", batch(date(2207, 12, 31))).codes == [
        "batch_dates_out_of_window"]


def test_every_suite_is_a_reviewed_file_with_a_version() -> None:
    versions = suite_versions(SETTINGS)
    assert set(versions) == {
        "staged_merchants", "staged_complaints", "staged_inspections",
        "staged_gift_evaluations", "registry_merchants", "registry_products",
    }
    for name, label in versions.items():
        document = json.loads((SETTINGS.expectations_dir / f"{name}.json").read_text())
        assert label.startswith(document["meta"]["version"] + "+")
        assert all(e["meta"]["code"] for e in document["expectations"])


def test_a_key_repeated_in_a_batch_fails_the_staged_suite() -> None:
    # Ingestion quarantines repeated keys row by row, so only the suite itself can show this.
    frame = staged_frame("merchants", [merchant(filing_id="F1"), merchant(filing_id="F1")])
    result = _staged("merchants", frame.with_columns(pl.lit("静安区").alias("district"),
                                                     pl.lit("路").alias("address")))
    assert not result.success and result.codes == ["batch_key_not_unique"]
    assert "filing_id" in result.failures[0].message_en
    assert result.rows == 2 and result.passed == result.evaluated - 1


def test_a_batch_of_another_region_fails_the_staged_suite() -> None:
    frame = staged_frame("merchants", [merchant(region="JS")])
    result = _staged("merchants", frame, region="JS")
    assert result.success
    assert _staged("merchants", frame, region="ZJ").codes == ["batch_region_mixed"]


def test_a_panel_that_gives_every_product_ten_fails_as_implausible() -> None:
    rows = [evaluation(evaluator_id=f"E{i}", quality=10.0) for i in range(5)]
    result = _staged("gift_evaluations", staged_frame("gift_evaluations", rows), region="ZJ")
    assert result.codes == ["batch_implausible_distribution"]
    assert result.failures[0].column == "quality"
    assert "10" in result.failures[0].message_zh


def _codes(suite) -> list[str]:
    return [e["meta"]["code"] for e in suite.document["expectations"]]


@pytest.mark.parametrize(("dataset", "whole_list"), [
    ("merchants", ["batch_implausible_distribution"]),
    ("inspections", ["batch_implausible_pass_rate"]),
    ("complaints", ["batch_implausible_distribution"]),
    ("gift_evaluations", ["batch_implausible_distribution"] * 4),
])
def test_whole_list_checks_are_left_out_of_an_upsert_batch_only(dataset: str,
                                                                 whole_list: list[str]) -> None:
    suite = load_suite(SETTINGS.expectations_dir, CONFIG.suites.staged[dataset])
    upsert, skipped = suite_in_scope(suite, mode="upsert", empty_optional=())
    assert [s.code for s in skipped] == whole_list
    assert {s.reason for s in skipped} == {"complete_list_only"}
    assert all(s.message_zh and s.message_en for s in skipped)
    # The row-count floor still applies to every batch; the suite is the same reviewed file.
    assert "batch_row_count" in _codes(upsert) and upsert.label == suite.label
    assert len(_codes(upsert)) == len(_codes(suite)) - len(whole_list)
    assert suite_in_scope(suite, mode="replace", empty_optional=()) == (suite, ())


def test_a_range_check_of_an_optional_column_left_empty_is_not_run() -> None:
    # Nothing resolved yet: resolved_on (optional) is empty throughout the batch.
    frame = staged_frame("complaints", [complaint(complaint_id=f"C{i}", status="in_progress")
                                        for i in range(3)])
    contract = load_contracts(SETTINGS.schemas_dir)["complaints"]
    empty = empty_optional_columns(frame, contract.required_columns)
    assert "resolved_on" in empty and "received_on" not in empty
    assert not _staged("complaints", frame).success
    suite = load_suite(SETTINGS.expectations_dir, "staged_complaints")
    scoped, skipped = suite_in_scope(suite, mode="replace", empty_optional=empty)
    assert [(s.expectation, s.column, s.reason) for s in skipped] == [
        ("expect_column_min_to_be_between", "resolved_on", "optional_column_empty"),
        ("expect_column_max_to_be_between", "resolved_on", "optional_column_empty"),
    ]
    bounds = row_count_bounds(CONFIG, "complaints", "replace", None)
    result = suite_result(frame, scoped, staged_suite_parameters(
        CONFIG, region="SH", dataset="complaints", today=TODAY, bounds=bounds))
    assert result.success and result.evaluated == len(_codes(suite)) - 2
    # A resolved_on with a value is still checked against the date window.
    dated = frame.with_columns(pl.lit(date(1990, 1, 1)).alias("resolved_on"))
    assert suite_in_scope(suite, mode="replace", empty_optional=empty_optional_columns(
        dated, contract.required_columns)) == (suite, ())
    assert _staged("complaints", dated).codes == ["batch_dates_out_of_window"]


def _registry(**changes) -> pl.DataFrame:
    return registry_merchants(**changes)


def _registry_result(frame: pl.DataFrame):
    suite = load_suite(SETTINGS.expectations_dir, CONFIG.suites.registry["merchants"])
    return suite_result(registry_check_frame(frame, MODEL), suite,
                        registry_suite_parameters(MODEL))


@pytest.mark.parametrize(("changes", "code"), [
    ({}, None),
    ({"uscc": "91310000MA00000002"}, "registry_uscc_not_unique"),
    ({"score": 95.0}, "registry_score_not_sum"),
    ({"grade": "B"}, "registry_grade_inconsistent"),
    ({"score_quality": 5.0, "score": 75.0, "trusted": True}, "registry_grade_inconsistent"),
    ({"disqualifications": ["revoked"]}, "registry_trusted_inconsistent"),
    ({"disqualifications": ["revoked"], "trusted": False, "verdict": "disqualified"},
     "registry_grade_inconsistent"),
    ({"disqualifications": ["revoked"], "grade": None, "trusted": False,
      "verdict": "disqualified"}, None),
    ({"disqualifications": ["revoked"], "grade": None, "trusted": False},
     "registry_verdict_inconsistent"),
    ({"verdict": "listed"}, "registry_verdict_inconsistent"),
    ({"verdict": "approved"}, "registry_verdict_inconsistent"),
    ({"score_quality": 0.0, "score_complaints": 25.0, "score": 65.0, "grade": "C",
      "trusted": False}, "registry_verdict_inconsistent"),
    ({"score_quality": 0.0, "score_complaints": 25.0, "score": 65.0, "grade": "C",
      "trusted": False, "verdict": "listed"}, None),
    ({"trusted": False}, "registry_trusted_inconsistent"),
    ({"name_variants": ["上海进口商品有限公司", "联系 13912345678"]}, "registry_pii_mobile_number"),
    ({"name": "张三 310101199001011234"}, "registry_pii_resident_id"),
])
def test_the_registry_suite_catches_each_inconsistency(changes: dict, code: str | None) -> None:
    result = _registry_result(_registry(**changes))
    assert result.success == (code is None)
    if code:
        assert code in result.codes
        assert all(f.message_zh and f.message_en for f in result.failures)


def test_grade_thresholds_come_from_the_score_model() -> None:
    # With C at 60, a 65-point merchant graded C is consistent; with C at 66 it is not.
    frame = _registry(score_quality=0.0, score_complaints=25.0, score=65.0, grade="C",
                      trusted=False, verdict="listed")
    assert _registry_result(frame).success
    grades = [g if g.grade != "C" else g.model_copy(update={"min_score": 66})
              for g in MODEL.grades]
    strict = MODEL.model_copy(update={"grades": grades})
    suite = load_suite(SETTINGS.expectations_dir, "registry_merchants")
    result = suite_result(registry_check_frame(frame, strict), suite,
                          registry_suite_parameters(strict))
    assert result.codes == ["registry_grade_inconsistent"]


def test_a_repeated_product_key_fails_the_products_suite() -> None:
    products = pl.DataFrame({
        "region": ["ZJ", "ZJ"], "product_id": ["P1", "P1"], "evaluation_round": ["2026"] * 2,
        "uscc": ["u", "u"], "product_name": ["龙井", "龙井"], "origin_city": ["杭州"] * 2,
        "category": ["tea"] * 2, "evaluators": [3, 3], "quality": [8.0, 8.0],
        "culture": [8.0, 8.0], "packaging": [8.0, 8.0], "value": [8.0, 8.0],
        "overall": [8.0, 8.0], "rank_in_category": [1, 1], "source_batches": [["B"], ["B"]],
    })
    suite = load_suite(SETTINGS.expectations_dir, "registry_products")
    result = suite_result(products, suite, registry_suite_parameters(MODEL))
    assert result.codes == ["registry_product_key_not_unique"]
    assert suite_result(products.head(1), suite, registry_suite_parameters(MODEL)).success


def test_a_run_leaves_no_copy_of_the_batch_behind() -> None:
    # GX keeps its latest context in a module global, and the context's execution engine kept
    # the batch's pandas copy: about 200 MB for a million merchant rows, alive until the next
    # run, through a whole publication after the last batch's gate.
    rows = 1234
    frame = staged_frame("merchants", [merchant(filing_id=f"F{i}") for i in range(rows)])
    result = _staged("merchants", frame.with_columns(pl.lit("静安区").alias("district"),
                                                     pl.lit("路").alias("address")))
    assert result.success and result.rows == rows
    gc.collect()
    assert not any(isinstance(o, pd.DataFrame) and len(o) == rows for o in gc.get_objects())


def test_a_table_of_many_chunks_is_validated_as_the_same_table_in_one() -> None:
    """The registry suite on a table read back in parts (a chunk per row, as polars keeps
    concatenated frames) answers as on the same table in one chunk; the frame it validates
    holds each Arrow-backed column in one chunk, its numbers as NumPy."""
    from registry.quality.runner import _pandas_frame

    inconsistent = [{}, {"grade": "B"}, {"verdict": "listed"}, {"trusted": False},
                    {"score": 95.0}, {"disqualifications": ["revoked"]}]
    parts = [_registry(uscc=f"91310000MA{n:08d}", **changes)
             for n, changes in enumerate(inconsistent * 3, start=3)]
    chunked = registry_check_frame(pl.concat(parts, rechunk=False), MODEL)
    assert chunked.n_chunks() == len(parts)
    data = _pandas_frame(chunked)
    for name in data.columns:
        array = data[name].array
        if isinstance(data[name].dtype, pd.ArrowDtype):
            assert array._pa_array.num_chunks == 1, name
        else:
            assert data[name].dtype.kind in "fiu", name
    pd.testing.assert_frame_equal(data, _pandas_frame(chunked.rechunk()))
    suite = load_suite(SETTINGS.expectations_dir, "registry_merchants")
    params = registry_suite_parameters(MODEL)
    many, one = suite_result(chunked, suite, params), suite_result(chunked.rechunk(), suite, params)
    assert not many.success and many.codes == one.codes
    assert [(f.code, f.observed) for f in many.failures] == [
        (f.code, f.observed) for f in one.failures]
