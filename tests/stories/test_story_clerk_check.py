"""A council clerk checks a file before sending it, then uploads it: every problem of the file is
told in one run with a "did you mean", the data sheet is found behind a 填表说明 sheet, messages
are never cropped, a refused file is not uploaded unless the clerk insists, and the receipt is
found by the file's own name."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import xlsxwriter
from fixtures.bad.make_bad import HEADER, ROW
from rich.console import Console
from typer.testing import CliRunner

from registry.cli import app
from registry.cli.files import print_check
from registry.config.settings import Settings
from registry.ingest.pipeline import ingest_pending
from registry.storage import LocalStorage

runner = CliRunner()


def _csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\r\n".join([header, *rows]) + "\r\n", encoding="utf-8")
    return path


def _three_problem_file(tmp_path: Path) -> Path:
    """The uscc column headed 营业执照号, an extra 微信号 column, and no 可追溯 column."""
    header = HEADER.split(",")
    row = ROW.split(",")
    gone = header.index("可追溯")
    del header[gone], row[gone]
    header[header.index("统一社会信用代码")] = "营业执照号"
    return _csv(tmp_path / "六月备案.csv", ",".join([*header, "微信号"]), ",".join([*row, "wx1"]))


def test_every_problem_of_a_file_is_told_in_one_run_with_a_did_you_mean(tmp_path) -> None:
    file = _three_problem_file(tmp_path)
    result = runner.invoke(app, ["check", str(file), "--region", "SH", "--dataset", "merchants",
                                 "--json"])
    assert result.exit_code == 2, result.output
    problems = json.loads(result.stdout)["file_errors"]
    assert [(p["code"], p.get("did_you_mean")) for p in problems] == [
        ("UNKNOWN_COLUMN", "统一社会信用代码"),
        ("UNKNOWN_COLUMN", None),
        ("MISSING_COLUMN", "营业执照号"),
        ("MISSING_COLUMN", None),
    ]
    assert "营业执照号" in problems[0]["message_zh"] and "统一社会信用代码" in problems[0][
        "message_zh"]
    assert "微信号" in problems[1]["message_zh"] and "六月备案.csv" in problems[1]["message_en"]
    assert "可追溯" in problems[3]["message_zh"]

    # The same, in words, without --json.
    text = runner.invoke(app, ["check", str(file), "--region", "SH", "--dataset", "merchants"])
    assert text.exit_code == 2
    for words in ("营业执照号", "微信号", "可追溯", "Did you mean"):
        assert words in text.stdout


def _workbook(path: Path, sheets: dict[str, list[list[str]]]) -> Path:
    book = xlsxwriter.Workbook(str(path))
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                sheet.write_string(r, c, value)
    book.close()
    return path


def test_a_workbook_whose_first_sheet_is_instructions_is_read_from_its_data_sheet(
    tmp_path,
) -> None:
    rows = [HEADER.split(","), ROW.split(","), ROW.replace("SH-1", "SH-2").split(",")]
    file = _workbook(tmp_path / "备案.xlsx", {
        "填表说明": [["填表说明"], ["1. 每行一条备案。"], ["2. 日期写成 2024-03-01。"]],
        "备案数据": rows,
    })
    result = runner.invoke(app, ["check", str(file), "--region", "SH", "--dataset", "merchants",
                                 "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["accepted"], doc["sheet"]) == (2, "备案数据")
    text = runner.invoke(app, ["check", str(file), "--region", "SH", "--dataset", "merchants"])
    assert "备案数据" in text.stdout


def _duplicates(tmp_path: Path) -> Path:
    """One filing twice, its copies disagreeing (another address): both are refused."""
    return _csv(tmp_path / "重复.csv", HEADER, ROW, ROW.replace("南京西路1618号", "南京西路1号"))


def test_the_whole_instruction_is_shown_piped_and_at_80_columns(tmp_path) -> None:
    file = _duplicates(tmp_path)
    piped = runner.invoke(app, ["check", str(file), "--region", "SH", "--dataset", "merchants"])
    assert piped.exit_code == 1
    assert "请只保留一行" in piped.stdout and "Keep one row." in piped.stdout
    assert "…" not in piped.stdout and not re.search(r"[│┃─━┏┌]", piped.stdout)
    assert "\x1b[" not in piped.stdout  # no colour codes when piped

    doc = json.loads(runner.invoke(app, ["check", str(file), "--region", "SH", "--dataset",
                                         "merchants", "--json"]).stdout)
    out = io.StringIO()
    print_check(doc, Console(file=out, width=80, force_terminal=True, color_system=None))
    shown = out.getvalue()
    assert max(len(line) for line in shown.splitlines()) <= 80
    assert "…" not in shown
    joined = re.sub(r"\s+", "", shown)
    assert "请只保留一行" in joined and "Keeponerow." in joined


def test_a_refused_file_is_uploaded_only_when_forced_and_its_receipt_is_found_by_name(
    tmp_path,
) -> None:
    root = tmp_path / "root"
    env = {"REGISTRY_STORAGE_URI": f"file://{root}", "PREFECT_API_URL": ""}
    file = _three_problem_file(tmp_path)
    storage = LocalStorage(root)

    refused = runner.invoke(app, ["upload", str(file), "--region", "SH", "--dataset",
                                  "merchants"], env=env)
    assert refused.exit_code == 2, refused.output
    assert "营业执照号" in refused.stdout and "--force" in refused.stdout
    assert list(storage.list("landing/")) == []

    empty = tmp_path / "空.csv"
    empty.write_bytes(b"")
    assert runner.invoke(app, ["upload", str(empty), "--region", "SH", "--dataset",
                               "merchants"], env=env).exit_code == 2
    assert list(storage.list("landing/")) == []

    forced = runner.invoke(app, ["upload", str(file), "--region", "SH", "--dataset",
                                 "merchants", "--force"], env=env)
    assert forced.exit_code == 0, forced.output
    receipt_key = re.search(r"landing/SH/_receipts/\S+\.json", forced.stdout).group()
    assert "六月备案" in receipt_key
    assert storage.exists("landing/SH/merchants/六月备案.csv")

    ingest_pending(storage, Settings(_env_file=None, storage_uri=f"file://{root}"))
    receipt = json.loads(storage.read_bytes(receipt_key))
    assert receipt["file"] == "六月备案.csv" and receipt["status"] == "rejected"
    assert [e["code"] for e in receipt["file_errors"]] == [
        "UNKNOWN_COLUMN", "UNKNOWN_COLUMN", "MISSING_COLUMN", "MISSING_COLUMN"]
    by_name = [i.key for i in storage.list("landing/SH/_receipts/") if "六月备案" in i.key]
    assert sorted(by_name) == sorted([receipt_key, receipt_key.removesuffix(".json") + ".csv"])


def test_check_warns_of_batch_gate_rules_the_file_will_trip(tmp_path) -> None:
    """Shanghai's batch gate holds a merchants batch with more than half its addresses empty;
    the file alone shows it, so check says so, and the exit code stays that of the rows."""
    file = _csv(tmp_path / "无地址.csv", HEADER, ROW.replace("南京西路1618号", ""),
                ROW.replace("SH-1", "SH-2").replace("南京西路1618号", ""))
    result = runner.invoke(app, ["check", str(file), "--region", "SH", "--dataset", "merchants",
                                 "--json"])
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert [(w["code"], w["column"]) for w in warnings] == [("batch_null_rate", "address")]
    assert "address" in warnings[0]["message_en"] and warnings[0]["message_zh"]
    text = runner.invoke(app, ["check", str(file), "--region", "SH", "--dataset", "merchants"])
    assert text.exit_code == 0 and "batch_null_rate" in text.stdout


def test_check_of_a_file_with_no_acceptable_row_names_the_open_bound(tmp_path) -> None:
    """Every row of the file is refused: check warns that the batch would be empty, and words
    the row-count bound as the gate does (1–∞), not with a placeholder left unfilled."""
    file = _csv(tmp_path / "坏代码.csv", HEADER, ROW.replace("91310115MA1K3Y4P64", "91310115"))
    doc = json.loads(runner.invoke(app, ["check", str(file), "--region", "SH", "--dataset",
                                         "merchants", "--json"]).stdout)
    (count,) = [w for w in doc["warnings"] if w["code"] == "batch_row_count"]
    assert "1–∞" in count["message_zh"] and "1-∞" in count["message_en"]
    assert "None" not in count["message_zh"] + count["message_en"]
