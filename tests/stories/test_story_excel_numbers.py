"""A clerk's spreadsheet keeps a code column as numbers. Excel holds 15 significant digits of a
number, so an 18-digit USCC or a 19-digit complaint number typed into such a column has lost its
last digits before the file is even saved; what it shows is 9.13100006073574E+17. The lost
digits are not in the file: no reader can give them back. A rounded code can still pass both
USCC check characters (about one in thirty does), and then it names a merchant no council
filed. So such a cell is refused, row by row, saying what Excel did and how to fix the column,
and the snapshot never lists a code the council did not type."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import xlsxwriter
from council_world import CouncilWorld, complaint, filing, merchant_code

from registry.ingest.uscc import uscc_is_valid

# An all-digit code, and what Excel keeps of it when the column is a number: the rounded code
# passes both check characters too, so it would be taken for another, real-looking merchant.
TYPED = "913100006073573565"
EXCEL_KEPT = float(f"{int(TYPED):.14e}")  # 15 significant digits, as Excel stores it
ROUNDED = str(int(EXCEL_KEPT))  # 913100006073574016: the number's digits, written out
SHOWN = "9.13100006073574E+17"


def _workbook(path: Path, rows: list[dict[str, str]], numbers: dict[tuple[int, str], float]
              ) -> bytes:
    """A workbook with ``rows`` under their keys as the header; the cells in ``numbers``
    ((row index, column) -> value) are Excel numbers, every other cell text."""
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("备案")
    header = list(rows[0])
    for c, name in enumerate(header):
        sheet.write_string(0, c, name)
    for r, row in enumerate(rows):
        for c, name in enumerate(header):
            if (r, name) in numbers:
                sheet.write_number(r + 1, c, numbers[(r, name)])
            else:
                sheet.write_string(r + 1, c, row[name])
    book.close()
    return path.read_bytes()


def test_the_check_of_the_rounded_code_passes_so_only_the_cell_type_can_tell():
    codes = pl.DataFrame({"uscc": [TYPED, ROUNDED]})
    assert codes.select(uscc_is_valid(pl.col("uscc"))).to_series().to_list() == [True, True]
    assert TYPED != ROUNDED


def test_a_code_kept_as_a_number_by_excel_is_refused_and_no_rounded_code_is_listed(tmp_path):
    """Shanghai's filings workbook has ten merchants; the clerk typed the fourth one's code
    into a cell formatted as a number. That row is refused with Excel's own rendering of what
    it kept, and the nine others are published. The consumer app finds neither the code the
    clerk meant (it is not in the file) nor the rounded one."""
    w = CouncilWorld(tmp_path)
    rows = [filing("SH", f"SH-{n}", merchant_code("SH", n)) for n in range(1, 11)]
    rows[3] = filing("SH", "SH-4", TYPED)
    data = _workbook(tmp_path / "备案.xlsx", rows, {(3, "USCC"): EXCEL_KEPT})
    key = w.upload("SH", "merchants", data, name="十一月备案.xlsx")
    result = w.ingest()[key]

    receipt = w.receipt(result)
    assert (receipt["accepted"], receipt["rejected"]) == (9, 1), receipt
    (error,) = receipt["row_errors"]
    assert (error["row"], error["column"], error["code"]) == (5, "uscc", "NUMBER_SHORTENED")
    for message in (error["message_zh"], error["message_en"]):
        assert "十一月备案.xlsx" in message and SHOWN in message
    assert "第 5 行" in error["message_zh"] and "15" in error["message_zh"]
    assert "文本" in error["message_zh"]
    assert "row 5" in error["message_en"] and "Text" in error["message_en"]

    w.publish()
    listed = w.merchants()
    assert ROUNDED not in listed and TYPED not in listed
    assert len(listed) == 9


def test_the_same_column_exported_to_csv_is_told_the_same_way(tmp_path):
    """Saved as CSV, the same column reads 9.13100006073574E+17 (or shorter, as wide as the
    column was): the clerk is told Excel cut the code, not merely that it is no valid USCC."""
    w = CouncilWorld(tmp_path)
    rows = [filing("SH", f"SH-{n}", merchant_code("SH", n)) for n in range(1, 11)]
    rows[3] = filing("SH", "SH-4", SHOWN)
    rows[4] = filing("SH", "SH-5", "9.131E+17")
    key = w.upload("SH", "merchants", rows)
    receipt = w.receipt(w.ingest()[key])
    assert [(e["row"], e["column"], e["code"]) for e in receipt["row_errors"]] == [
        (5, "uscc", "NUMBER_SHORTENED"), (6, "uscc", "NUMBER_SHORTENED")]
    assert "9.131E+17" in receipt["row_errors"][1]["message_en"]


def test_complaint_numbers_kept_as_numbers_do_not_collapse_into_one(tmp_path):
    """Anhui numbers its complaints with 19 digits. In a number column two complaints that
    differ in the last digits become the same number, and the later row would replace the
    earlier one. Both rows are refused instead, each with its own reason."""
    w = CouncilWorld(tmp_path)
    x = merchant_code("AH", 1)
    w.upload("AH", "merchants", [filing("AH", f"AH-{n}", merchant_code("AH", n))
                                 for n in range(1, 4)])
    ids = ["2026060100000000011", "2026060100000000012"]
    rows = [complaint(i, x) for i in ids] + [complaint("C-3", x)]
    data = _workbook(tmp_path / "投诉.xlsx", rows,
                     {(r, "Complaint ID"): float(f"{int(i):.14e}") for r, i in enumerate(ids)})
    key = w.upload("AH", "complaints", data, name="投诉.xlsx")
    receipt = w.receipt(w.ingest()[key])
    assert [(e["row"], e["column"], e["code"]) for e in receipt["row_errors"]] == [
        (2, "complaint_id", "NUMBER_SHORTENED"), (3, "complaint_id", "NUMBER_SHORTENED")]
    assert receipt["accepted"] == 1
