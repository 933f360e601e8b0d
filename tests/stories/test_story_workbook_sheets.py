"""A clerk keeps each month's list on a sheet of one workbook: last month's sheet copied, edited
into this month's, and the old one hidden or left beside it. The registry must read the list the
clerk means to file, and when the workbook does not say which one that is, refuse it and say so,
rather than guess and publish last month's verdicts."""

from __future__ import annotations

from pathlib import Path

import xlsxwriter
from council_world import CouncilWorld, filing, merchant_code


def _monthly_workbook(path: Path, sheets: list[tuple[str, list[dict[str, str]], bool]]) -> bytes:
    """Sheets of (name, rows, hidden), in order; the last visible sheet is the active one."""
    book = xlsxwriter.Workbook(str(path))
    written = []
    for name, rows, hidden in sheets:
        sheet = book.add_worksheet(name)
        header = list(rows[0])
        sheet.write_row(0, 0, header)
        for r, row in enumerate(rows, start=1):
            sheet.write_row(r, 0, [row[h] for h in header])
        written.append((sheet, hidden))
    visible = [sheet for sheet, hidden in written if not hidden]
    visible[-1].activate()
    for sheet, hidden in written:
        if hidden:
            sheet.hide()
    book.close()
    return path.read_bytes()


def _lists(region: str) -> tuple[str, list[dict[str, str]], list[dict[str, str]]]:
    """X, and the region's list of three last month (X active) and this month (X revoked)."""
    codes = [merchant_code(region, n) for n in (1, 2, 3)]
    october = [filing(region, f"{region}-{n}", code) for n, code in enumerate(codes, start=1)]
    november = [filing(region, f"{region}-1", codes[0], Status="revoked"), *october[1:]]
    return codes[0], october, november


def test_last_months_list_on_a_hidden_sheet_before_this_months_is_not_read(tmp_path):
    """Shanghai's workbook holds October's list on a hidden sheet, then November's, which
    revokes X. November's sheet is read: X is no longer trusted, and the receipt names it."""
    w = CouncilWorld(tmp_path)
    x, october, november = _lists("SH")
    w.upload("SH", "merchants", october)
    w.ingest()
    w.publish()
    assert w.merchant(x)["verdict"] == "trusted"

    data = _monthly_workbook(tmp_path / "备案.xlsx", [("10月", october, True),
                                                      ("11月", november, False)])
    key = w.upload("SH", "merchants", data, name="备案.xlsx")
    receipt = w.receipt(w.ingest()[key])
    assert receipt["sheet"] == "11月"
    w.publish()
    row = w.merchant(x)
    assert row is None or row["trusted"] is False


def test_two_visible_sheets_of_data_are_refused_naming_both(tmp_path):
    """Jiangsu's workbook shows October's and November's lists side by side. Which is the one
    to file cannot be told from the file: it is refused whole, naming both sheets and saying
    what to do, and the registry keeps what it had."""
    w = CouncilWorld(tmp_path)
    x, october, november = _lists("JS")
    w.upload("JS", "merchants", november)
    w.ingest()
    w.publish()

    data = _monthly_workbook(tmp_path / "备案.xlsx", [("10月", october, False),
                                                      ("11月", november, False)])
    key = w.upload("JS", "merchants", data, name="江苏备案.xlsx")
    result = w.ingest()[key]
    receipt = w.receipt(result)
    (error,) = receipt["file_errors"]
    assert error["code"] == "SEVERAL_DATA_SHEETS"
    for message in (error["message_zh"], error["message_en"]):
        assert "江苏备案.xlsx" in message and "10月" in message and "11月" in message
    assert "隐藏" in error["message_zh"] and "hide" in error["message_en"]
    w.publish()
    row = w.merchant(x)
    assert row is None or row["trusted"] is False
