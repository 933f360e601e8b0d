"""Realistic council files: exact accepted and rejected counts and codes, through the CLI."""

from __future__ import annotations

import json

import pytest
from fixtures.council_files import FIXTURES, check_bytes
from typer.testing import CliRunner

from registry.cli import app

EXPECTED = {
    ("merchants_sh_gb18030.csv", "SH", "merchants"): (10, 4, [
        (6, "uscc", "USCC_INVALID"),
        (7, "city", "CITY_NOT_IN_REGION"),
        (8, "valid_from", "DATE_INVALID"),
        (9, "filing_id", "DUPLICATE_KEY"),
        (10, "origin_countries", "CONDITIONAL_REQUIRED_MISSING"),
        (10, "traceable", "BOOLEAN_INVALID"),
        (12, "filing_id", "DUPLICATE_KEY"),
    ]),
    ("merchants_js_bom.csv", "JS", "merchants"): (5, 3, [
        (4, "program", "ENUM_INVALID"),
        (6, "origin_countries", "COUNTRY_UNKNOWN"),
    ]),
    ("complaints_zj.xlsx", "ZJ", "complaints"): (7, 3, [
        (6, "resolved_on", "CONDITIONAL_REQUIRED_MISSING"),
        (7, "recovered_amount_cny", "VALUE_OUT_OF_RANGE"),
        (8, "received_on", "DATE_IN_FUTURE"),
        (10, "category", "ENUM_INVALID"),
        (10, "consumer_phone", "PHONE_INVALID"),
    ]),
    ("inspections_ah.jsonl", "AH", "inspections"): (5, 3, [
        (3, "severity", "CONDITIONAL_REQUIRED_MISSING"),
        (5, "product_name", "REQUIRED_MISSING"),
        (5, "uscc", "USCC_INVALID"),
    ]),
    ("gift_evaluations_zj.parquet", "ZJ", "gift_evaluations"): (6, 3, [
        (3, "quality", "VALUE_OUT_OF_RANGE"),
        (5, "product_id+evaluation_round+evaluator_id", "DUPLICATE_KEY"),
        (6, "product_id+evaluation_round+evaluator_id", "DUPLICATE_KEY"),
    ]),
}
REFUSED = {
    "merchants_unknown_column.csv": "UNKNOWN_COLUMN",
    "merchants_missing_column.csv": "MISSING_COLUMN",
    "merchants_header_only.csv": "NO_DATA_ROWS",
}
runner = CliRunner()


@pytest.mark.parametrize(("fixture", "expected"), EXPECTED.items(), ids=lambda v: str(v)[:40])
def test_registry_check_json_on_each_fixture(fixture, expected) -> None:
    file, region, dataset = fixture
    rows, accepted, errors = expected
    result = runner.invoke(app, ["check", str(FIXTURES / file), "--region", region,
                                 "--dataset", dataset, "--json"])
    doc = json.loads(result.stdout)
    assert result.exit_code == 1
    assert set(doc) == {"file", "region", "dataset", "format", "encoding", "sheet", "rows",
                        "accepted", "rejected", "file_errors", "row_errors", "warnings",
                        "merged_cells", "ditto_cells"}
    assert (doc["rows"], doc["accepted"], doc["rejected"]) == (rows, accepted, rows - accepted)
    assert [(e["row"], e["column"], e["code"]) for e in doc["row_errors"]] == errors
    assert all(e["message_zh"] and e["message_en"] for e in doc["row_errors"])


@pytest.mark.parametrize(("file", "code"), REFUSED.items())
def test_registry_check_refuses_whole_files_with_exit_2(file: str, code: str) -> None:
    result = runner.invoke(app, ["check", str(FIXTURES / file), "--region", "SH",
                                 "--dataset", "merchants", "--json"])
    assert result.exit_code == 2
    doc = json.loads(result.stdout)
    assert [e["code"] for e in doc["file_errors"]] == [code]
    assert doc["row_errors"] == [] and doc["rows"] == 0


def test_registry_check_exit_0_when_every_row_is_accepted(tmp_path) -> None:
    lines = (FIXTURES / "inspections_ah.jsonl").read_text(encoding="utf-8").splitlines()
    clean = tmp_path / "clean.jsonl"
    clean.write_text("\n".join([lines[0], lines[1], lines[5]]) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["check", str(clean), "--region", "AH",
                                 "--dataset", "inspections"])
    assert result.exit_code == 0, result.stdout
    assert "3 accepted" in result.stdout


def test_sh_merchants_typed_values() -> None:
    check = check_bytes((FIXTURES / "merchants_sh_gb18030.csv").read_bytes(), "merchants", "SH",
                        file="merchants_sh_gb18030.csv")
    assert check.encoding == "gb18030"
    rows = {r["filing_id"]: r for r in check.accepted.iter_rows(named=True)}
    assert set(rows) == {"SH-2024-0001", "SH-2024-0002", "SH-2024-0003", "SH-2024-0011"}
    second = rows["SH-2024-0002"]
    assert second["merchant_name"] == "上海國際貿易中心有限公司"
    assert second["merchant_name_key"] == "上海国际贸易中心有限公司"
    assert second["city"] == "上海" and second["origin_countries"] == ["AU", "NZ"]
    assert second["categories"] == ["母婴", "保健品"]
    third = rows["SH-2024-0003"]  # full-width digits in the id and the date
    assert str(third["valid_from"]) == "2024-05-06" and third["program"] == "specialty_gift"
    assert str(rows["SH-2024-0011"]["valid_from"]) == "2024-04-01"  # Excel serial 45383
    assert rows["SH-2024-0011"]["status"] == "revoked"


def test_xlsx_footer_is_skipped_and_reported() -> None:
    check = check_bytes((FIXTURES / "complaints_zj.xlsx").read_bytes(), "complaints", "ZJ",
                        file="complaints_zj.xlsx")
    assert (check.format, check.sheet) == ("xlsx", "投诉汇总")
    assert [n.row for n in check.notes] == [13, 14]
    assert check.ignored_columns == ["序号"]
    resolved = check.accepted.filter(check.accepted["complaint_id"] == "ZJ-C-0001").row(
        0, named=True)
    assert (str(resolved["received_on"]), resolved["recovered_amount_cny"]) == ("2024-05-06",
                                                                               1200.5)
