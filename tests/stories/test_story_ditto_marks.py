"""Clerks write 同上 ("same as above"), or the ditto mark 〃, instead of typing a value again:
the city of every Shanghai row after the first, the 撤销 of three filings revoked together, the
credit code of six complaints against one merchant. The row means the value above it. Read as
written, each such row is refused, and a refused row keeps its filing's previous status or goes
uncounted, so a revoked merchant, or one with too many unresolved complaints, would stay
trusted."""

from __future__ import annotations

import json
from pathlib import Path

import xlsxwriter
from council_world import CouncilWorld, complaint, csv_bytes, filing, merchant_code
from typer.testing import CliRunner

from registry.build.scores import DISQUALIFIER_UNRESOLVED
from registry.cli import app


def test_dittoed_city_and_status_cells_read_as_the_cell_above(tmp_path):
    """Shanghai's complete list of eight, all trusted. November's list writes the city once and
    同上 under it, and revokes SH-3, SH-4 and SH-5 as 撤销, 同上, 〃. Every row is accepted,
    the receipt names the dittoed cells, and the three merchants are no longer trusted."""
    w = CouncilWorld(tmp_path)
    codes = [merchant_code("SH", n) for n in range(1, 9)]
    october = [filing("SH", f"SH-{n}", codes[n - 1]) for n in range(1, 9)]
    w.upload("SH", "merchants", october)
    w.ingest()
    w.publish()
    assert all(w.merchant(code)["verdict"] == "trusted" for code in codes)

    status = {3: "撤销", 4: "同上", 5: "〃"}
    november = [october[0], *(
        filing("SH", f"SH-{n}", codes[n - 1], City=" 同上 " if n == 4 else "同上",
               Status=status.get(n, "active")) for n in range(2, 9))]
    key = w.upload("SH", "merchants", csv_bytes(november), name="上海备案11月.csv")
    receipt = w.receipt(w.ingest()[key])
    assert (receipt["accepted"], receipt["row_errors"]) == (8, []), receipt["row_errors"]
    assert [(d["column"], d["first_row"], d["last_row"]) for d in receipt["ditto_cells"]] == [
        ("City", 3, 9), ("Status", 5, 6)]
    assert "第 5–6 行的「Status」写的是「同上」" in receipt["ditto_cells"][1]["message_zh"]
    assert receipt["batch_status"] == "released", receipt["held_reasons"]
    w.publish()
    for x in codes[2:5]:
        row = w.merchant(x)
        assert row is None or row["trusted"] is False
    assert [w.merchant(code)["verdict"] for code in (*codes[:2], *codes[5:])] == ["trusted"] * 5


def _workbook(path: Path, rows: list[dict[str, str]]) -> Path:
    header = list(rows[0])
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("投诉")
    sheet.write_row(0, 0, header)
    for r, row in enumerate(rows, start=1):
        for c, column in enumerate(header):
            if row[column]:
                sheet.write_string(r, c, row[column])
    book.close()
    return path


def test_complaints_against_one_merchant_dittoed_are_all_counted(tmp_path):
    """Zhejiang's workbook records six unresolved complaints against X, its credit code typed
    once and 同上 under it, the date too. All six count: X is over the unresolved-complaint
    limit (5) and disqualified. `registry check` says so before the upload."""
    w = CouncilWorld(tmp_path)
    x, y, _ = w.three_listed("ZJ")
    rows = [complaint("ZJ-C1", x)] + [
        complaint(f"ZJ-C{n}", "同上", **{"Received On": "同上"}) for n in range(2, 7)]
    rows.append(complaint("ZJ-C7", y))
    path = _workbook(tmp_path / "浙江投诉.xlsx", rows)
    check = CliRunner().invoke(app, ["check", str(path), "--region", "ZJ",
                                     "--dataset", "complaints"])
    assert check.exit_code == 0, check.output
    assert "7 rows, 7 accepted" in check.stdout
    assert "rows 3–7 of column USCC say 同上" in check.stdout
    key = w.upload("ZJ", "complaints", path.read_bytes(), name=path.name)
    w.ingest_accepted(key, 7)
    w.publish()
    listed = w.merchant(x)
    assert (listed["complaints_12m"], listed["unresolved_12m"]) == (6, 6)
    assert DISQUALIFIER_UNRESOLVED in listed["disqualifications"]
    assert w.merchant(y)["verdict"] == "trusted"


def test_a_ditto_with_nothing_above_it_is_refused(tmp_path):
    """Guard: 同上 in the first row, or under an empty cell, has no value to repeat. The row
    is refused with the word shown, not read as something the clerk did not write."""
    codes = [merchant_code("AH", n) for n in range(1, 4)]
    rows = [filing("AH", "AH-1", codes[0], Status="同上"),
            filing("AH", "AH-2", codes[1], Status=""),
            filing("AH", "AH-3", codes[2], Status="同上")]
    path = tmp_path / "安徽备案.csv"
    path.write_bytes(csv_bytes(rows))
    check = CliRunner().invoke(app, ["check", str(path), "--region", "AH",
                                     "--dataset", "merchants", "--json"])
    doc = json.loads(check.stdout)
    assert doc["accepted"] == 0, check.output
    refused = {(e["row"], e["column"], e["code"]) for e in doc["row_errors"]}
    assert refused == {(2, "status", "ENUM_INVALID"), (3, "status", "REQUIRED_MISSING"),
                       (4, "status", "ENUM_INVALID")}
    assert doc["ditto_cells"] == []
