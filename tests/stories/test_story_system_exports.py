"""A council exports from its case system instead of typing a list: the 12315 complaints system
writes when each complaint was received, to the second, under 受理时间 (time received), and a
filing system writes a filing's end of validity as 2027-12-31 23:59:59. The day is the date
part: a naive time of day in a council's own export is Beijing time. Refused for the time, a
complaint goes uncounted and a revocation is lost, so a merchant that should not be trusted
stays trusted."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import xlsxwriter
from council_world import CouncilWorld, complaint, csv_bytes, filing, merchant_code
from typer.testing import CliRunner

from registry.build.scores import DISQUALIFIER_UNRESOLVED
from registry.cli import app


def _system_workbook(path: Path, rows: list[dict[str, object]]) -> Path:
    """``rows`` as a system writes them into a workbook: times as date-time cells."""
    header = list(rows[0])
    book = xlsxwriter.Workbook(str(path))
    timestamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    sheet = book.add_worksheet("导出数据")
    sheet.write_row(0, 0, header)
    for r, row in enumerate(rows, start=1):
        for c, column in enumerate(header):
            value = row[column]
            if isinstance(value, dt.datetime):
                sheet.write_datetime(r, c, value, timestamp)
            elif value:
                sheet.write_string(r, c, str(value))
    book.close()
    return path


def test_complaints_exported_with_times_received_are_counted(tmp_path):
    """Zhejiang's 12315 export lists six complaints against X still being handled, each
    received at a time of day, under 受理时间 and 办结时间; one against Y was closed the same
    afternoon. Every row is accepted and counted: X is over the unresolved limit and
    disqualified, Y's complaint is resolved."""
    w = CouncilWorld(tmp_path)
    x, y, _ = w.three_listed("ZJ")

    def exported(complaint_id: str, uscc: str, received: dt.datetime,
                 resolved: dt.datetime | None = None) -> dict[str, object]:
        row: dict[str, object] = {**complaint(complaint_id, uscc)}
        del row["Received On"], row["Resolved On"]
        row["受理时间"] = received
        row["办结时间"] = resolved or ""
        if resolved:
            row.update(Status="resolved", **{"Recovered Amount CNY": "300"})
        return row

    rows = [exported(f"ZJ-C{n}", x, dt.datetime(2026, 6, n, 9 + n, 15, 42)) for n in range(1, 7)]
    rows.append(exported("ZJ-C7", y, dt.datetime(2026, 6, 8, 10, 5),
                         dt.datetime(2026, 6, 8, 16, 40, 3)))
    path = _system_workbook(tmp_path / "12315导出.xlsx", rows)
    key = w.upload("ZJ", "complaints", path.read_bytes(), name=path.name)
    w.ingest_accepted(key, 7)
    w.publish()
    listed = w.merchant(x)
    assert (listed["complaints_12m"], listed["unresolved_12m"]) == (6, 6)
    assert DISQUALIFIER_UNRESOLVED in listed["disqualifications"]
    assert (w.merchant(y)["complaints_12m"], w.merchant(y)["unresolved_12m"]) == (1, 0)


def test_a_revocation_exported_with_end_of_day_times_revokes(tmp_path):
    """Jiangsu's filing system exports one row revoking X, its validity written to the last
    second of the day (2027-12-31 23:59:59). X is no longer trusted."""
    w = CouncilWorld(tmp_path)
    x, y, z = w.three_listed("JS")
    row = filing("JS", "JS-1", x, Status="撤销", **{"Valid From": "2024-01-01 00:00:00",
                                                     "Valid Until": "2027-12-31 23:59:59"})
    key = w.upload("JS", "merchants", csv_bytes([row]), name="备案系统导出.csv")
    w.ingest_accepted(key, 1)
    w.publish()
    assert w.merchant(x) is None
    assert {w.merchant(u)["verdict"] for u in (y, z)} == {"trusted"}


def test_a_revocation_exported_with_dates_as_eight_digits_revokes(tmp_path):
    """Anhui's filing system writes dates as eight digits, 20240101 and 20271231, as many
    government systems export them; Excel keeps them as numbers. Its export revoking X is one
    row, sent as a workbook. Before, the row was refused as not a date and X stayed trusted.
    Now the eight digits are read as year, month and day: X is not listed."""
    w = CouncilWorld(tmp_path)
    x, y, _ = w.three_listed("AH")
    row = filing("AH", "AH-1", x, Status="撤销")
    path = tmp_path / "备案系统导出.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, list(row))
    dates = {"Valid From": 20240101, "Valid Until": 20271231}
    sheet.write_row(1, 0, [dates.get(column, value) for column, value in row.items()])
    book.close()
    key = w.upload("AH", "merchants", path.read_bytes(), name=path.name)
    w.ingest_accepted(key, 1)
    w.publish()
    assert w.merchant(x) is None
    assert w.merchant(y)["verdict"] == "trusted"


def test_eight_digits_that_are_no_day_are_refused(tmp_path):
    """Guard: eight digits are a day only when they are one. 20271331 (month 13) and 2027123
    (seven digits) are refused as not dates, with the value shown."""
    codes = [merchant_code("AH", n) for n in (1, 2)]
    path = tmp_path / "导出.csv"
    path.write_bytes(csv_bytes([filing("AH", "AH-1", codes[0], **{"Valid Until": "20271331"}),
                                filing("AH", "AH-2", codes[1], **{"Valid Until": "2027123"})]))
    check = CliRunner().invoke(app, ["check", str(path), "--region", "AH",
                                     "--dataset", "merchants", "--json"])
    doc = json.loads(check.stdout)
    assert [(e["row"], e["column"], e["code"]) for e in doc["row_errors"]] == [
        (2, "valid_until", "DATE_INVALID"), (3, "valid_until", "DATE_INVALID")]
    assert "20271331" in doc["row_errors"][0]["message_zh"]
    assert "2027123" in doc["row_errors"][1]["message_en"]


def test_a_time_with_a_zone_is_not_read_as_a_day(tmp_path):
    """Guard: 2027-12-31T23:59:59Z is 08:00 on the next day in Beijing; which day the council
    means depends on the zone, so the row is refused with the value shown, as before."""
    code = merchant_code("JS", 1)
    path = tmp_path / "导出.csv"
    path.write_bytes(csv_bytes([filing("JS", "JS-1", code,
                                       **{"Valid Until": "2027-12-31T23:59:59Z"})]))
    check = CliRunner().invoke(app, ["check", str(path), "--region", "JS",
                                     "--dataset", "merchants", "--json"])
    doc = json.loads(check.stdout)
    assert [(e["row"], e["column"], e["code"]) for e in doc["row_errors"]] == [
        (2, "valid_until", "DATE_INVALID")]
