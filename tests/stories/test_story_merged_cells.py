"""Clerks merge cells. A list sorted by city shows 上海 once, in one tall merged cell beside all
of its rows; two filings revoked together show 撤销 once, in a merged cell spanning both. In
the workbook only the merged range's first cell holds the value, but every row of it shows the
value, and every row of it means it: the registry must read what the clerk sees, or it refuses
the rows under the first, and a refused row keeps the filing's previous status, so a revoked
merchant would stay trusted."""

from __future__ import annotations

from pathlib import Path

import xlsxwriter
from council_world import CouncilWorld, filing, merchant_code
from typer.testing import CliRunner

from registry.cli import app


def _merged_workbook(path: Path, rows: list[dict[str, str]],
                     merges: list[tuple[str, int, int]]) -> bytes:
    """``rows`` under their header, then each (column, first row, last row) of ``merges``
    (0-based data rows) merged and showing the first row's value."""
    header = list(rows[0])
    # Excel keeps a merged range's first value and drops the others' (it warns as much).
    merged = {(r, header.index(column)) for column, first, last in merges
              for r in range(first + 1, last + 1)}
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("名单")
    sheet.write_row(0, 0, header)
    for r, row in enumerate(rows):
        for c, column in enumerate(header):
            if (r, c) not in merged:
                sheet.write_string(r + 1, c, row[column])
    for column, first, last in merges:
        c = header.index(column)
        sheet.merge_range(first + 1, c, last + 1, c, rows[first][column])
    book.close()
    return path.read_bytes()


def test_merged_city_and_status_cells_read_as_the_clerk_sees_them(tmp_path):
    """Shanghai's complete list of five, all trusted. November's workbook adds a sixth merchant,
    shows the city once for all six rows, and revokes X and Y in one merged 状态 cell. X and Y
    are no longer trusted, the sixth is listed, and no row is refused."""
    w = CouncilWorld(tmp_path)
    codes = [merchant_code("SH", n) for n in range(1, 7)]
    october = [filing("SH", f"SH-{n}", codes[n - 1]) for n in range(1, 6)]
    w.upload("SH", "merchants", october)
    w.ingest()
    w.publish()
    assert all(w.merchant(code)["verdict"] == "trusted" for code in codes[:5])

    november = [*october[:2],
                filing("SH", "SH-3", codes[2], Status="撤销"),
                filing("SH", "SH-4", codes[3], Status="撤销"),
                october[4], filing("SH", "SH-6", codes[5])]
    data = _merged_workbook(tmp_path / "上海备案.xlsx", november,
                            [("City", 0, 5), ("Status", 2, 3)])
    # The clerk checks the workbook first: every row is accepted, and both ranges are named.
    check = CliRunner().invoke(app, ["check", str(tmp_path / "上海备案.xlsx"), "--region", "SH",
                                     "--dataset", "merchants"])
    assert check.exit_code == 0, check.output
    assert "6 rows, 6 accepted" in check.stdout
    assert "rows 2–7 of column City are one merged cell" in check.stdout
    key = w.upload("SH", "merchants", data, name="上海备案.xlsx")
    result = w.ingest()[key]
    receipt = w.receipt(result)
    assert (receipt["accepted"], receipt["row_errors"]) == (6, []), receipt["row_errors"]
    assert [(m["column"], m["first_row"], m["last_row"]) for m in receipt["merged_cells"]] == [
        ("City", 2, 7), ("Status", 4, 5)]
    assert "第 4–5 行的「Status」是一个合并单元格" in receipt["merged_cells"][1]["message_zh"]
    w.publish()
    for x in codes[2:4]:
        row = w.merchant(x)
        assert row is None or row["trusted"] is False
    assert [w.merchant(code)["verdict"] for code in (*codes[:2], codes[4], codes[5])] == [
        "trusted"] * 4
