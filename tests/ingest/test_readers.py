"""Reading council files: format by content, header under title rows, footers, limits."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile

import polars as pl
import pytest
import xlsxwriter

from registry.config.contracts import load_contracts
from registry.config.settings import Settings
from registry.ingest import rejections as rj
from registry.ingest.pipeline import read_limits
from registry.ingest.readers import refusal_for_name, upload_table
from registry.ingest.tables import SOURCE_ROW, Limits

SETTINGS = Settings(_env_file=None)
KNOWN = set(load_contracts(SETTINGS.schemas_dir)["inspections"].header_index())
LIMITS = read_limits(SETTINGS)
HEADER = "检测编号,统一社会信用代码,样品名称,检测日期,检测结论"
ROW = "T1,91110000600037341L,奶粉,2024-04-01,合格"


def _refused(data: bytes, limits: Limits = LIMITS) -> str:
    with pytest.raises(rj.FileRejected) as info:
        upload_table(data, KNOWN, limits)
    return info.value.code


def test_csv_header_found_under_title_rows_and_rows_numbered_as_in_excel() -> None:
    data = f"抽检结果汇总表\n\n{HEADER}\n{ROW}\n\n{ROW}\n".encode()
    table = upload_table(data, KNOWN, LIMITS)
    assert table.format == "csv"
    assert table.header == HEADER.split(",")
    assert table.rows[SOURCE_ROW].to_list() == [4, 6]  # the blank row 5 is skipped


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-8-sig", "utf-8"])
@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_csv_encodings_and_delimiters(encoding: str, sep: str) -> None:
    text = f"{HEADER}\n{ROW}\n".replace(",", sep)
    table = upload_table(text.encode(encoding), KNOWN, LIMITS)
    assert table.rows.row(0)[:5] == tuple(ROW.split(","))
    assert table.encoding in ({"gbk": "gb18030"}.get(encoding, encoding),)


def test_csv_footer_of_notes_is_skipped_and_reported() -> None:
    data = f"{HEADER}\n{ROW}\n填表说明：日期写成 2024-04-01,\n填表人：张三,审核人：李四\n".encode()
    table = upload_table(data, KNOWN, LIMITS)
    assert table.rows.height == 1
    assert [(n.row, n.starts_with[:4]) for n in table.notes] == [(3, "填表说明"), (4, "填表人：")]


def test_a_note_word_in_a_data_row_is_not_a_footer() -> None:
    data = f"{HEADER}\n备注,91110000600037341L,奶粉,2024-04-01,合格\n{ROW}\n".encode()
    table = upload_table(data, KNOWN, LIMITS)
    assert table.rows.height == 2 and table.notes == []


def _xlsx(write) -> bytes:
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf)
    book.add_worksheet("空白")  # an empty first sheet: the first sheet with data is read
    write(book.add_worksheet("数据"))
    book.close()
    return buf.getvalue()


def test_xlsx_first_sheet_with_data_title_rows_and_excel_row_numbers() -> None:
    def write(sheet) -> None:
        sheet.write(1, 0, "抽检结果")
        sheet.write_row(3, 0, HEADER.split(","))
        sheet.write_row(4, 0, ROW.split(","))
        sheet.write_row(6, 0, ROW.split(","))
        sheet.write(8, 0, "备注：以上数据截至 6 月 30 日")

    table = upload_table(_xlsx(write), KNOWN, LIMITS)
    assert (table.format, table.sheet) == ("xlsx", "数据")
    assert table.rows[SOURCE_ROW].to_list() == [5, 7]
    assert [n.row for n in table.notes] == [9]


def test_a_number_cell_longer_than_excel_keeps_reads_as_excel_shows_it() -> None:
    """A number cell of more than 15 digits is written in scientific notation, as the number
    Excel holds; a text cell of the same digits, and a shorter number, read as typed."""
    def write(sheet) -> None:
        sheet.write_row(0, 0, HEADER.split(","))
        rows = [("T1", 913100006073573565.0), ("T2", "913100006073573565"), ("T3", 12345.0),
                ("T4", 9.1310000607357e17), ("T5", "91110000600037341L")]
        for r, (inspection_id, code) in enumerate(rows, start=1):
            sheet.write_row(r, 0, [inspection_id, None, "奶粉", "2024-04-01", "合格"])
            if isinstance(code, float):
                sheet.write_number(r, 1, code)
            else:
                sheet.write_string(r, 1, code)

    table = upload_table(_xlsx(write), KNOWN, LIMITS)
    assert table.rows["c1"].to_list() == ["9.131000060735735E+17", "913100006073573565",
                                          "12345", "9.1310000607357E+17", "91110000600037341L"]
    assert table.rows[SOURCE_ROW].to_list() == [2, 3, 4, 5, 6]


def test_jsonl_rows_are_line_numbers_and_values_become_text() -> None:
    data = b'{"a": "x", "n": 1}\n\n{"a": "y", "n": 2.5, "l": ["JP", "FR"]}\n'
    table = upload_table(data, {"a"}, LIMITS)
    assert table.format == "jsonl"
    assert table.rows[SOURCE_ROW].to_list() == [1, 3]
    assert table.rows.row(1)[:3] == ("y", "2.5", "JP、FR")


def test_parquet_is_read_by_content_whatever_the_name() -> None:
    buf = io.BytesIO()
    pl.DataFrame({"检测编号": ["T1"], "检测日期": [dt.date(2024, 4, 1)]}).write_parquet(buf)
    table = upload_table(buf.getvalue(), KNOWN, LIMITS)
    assert table.format == "parquet"
    assert table.rows.row(0) == ("T1", "2024-04-01", 1)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", rj.FILE_EMPTY),
        (b"   \n\n", rj.FILE_EMPTY),
        (b"abc\x80\x80\xff\xfe" * 30, rj.ENCODING_UNDECODABLE),
        (b"a,b\n1,2\n", rj.NO_HEADER),
        (f"{HEADER}\n".encode(), rj.NO_DATA_ROWS),
        (f"{HEADER}\n{ROW},extra,more\n".encode(), rj.CSV_MALFORMED),
        (b"PK\x03\x04not really a zip", rj.WORKBOOK_DAMAGED),
        (b'{"a": 1}\n{broken\n', rj.FILE_UNREADABLE),
        (b"\xef\xbb\xbf\xd6\xd0\xce\xc4", rj.ENCODING_UNDECODABLE),
    ],
)
def test_unreadable_files_are_refused_with_a_stable_code(data: bytes, code: str) -> None:
    assert _refused(data) == code


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("data", "code", "kind_en"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)), rj.NOT_A_SPREADSHEET, "a PNG image"),
        (b"%PDF-1.7\n" + bytes(range(256)), rj.NOT_A_SPREADSHEET, "a PDF document"),
        (_zip({"word/document.xml": b"<w/>"}), rj.NOT_A_SPREADSHEET, "a Word document"),
        (_zip({"xl/workbook.xml": b"<workbook>"}), rj.WORKBOOK_DAMAGED, None),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600
         + "EncryptedPackage".encode("utf-16-le"), rj.WORKBOOK_ENCRYPTED, None),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600 + "Workbook".encode("utf-16-le")
         + bytes(range(256)) * 4, rj.WORKBOOK_DAMAGED, None),
    ],
    ids=["png", "pdf", "docx", "broken-xlsx", "encrypted", "broken-xls"],
)
def test_reader_errors_say_what_the_file_is_in_plain_words(data, code, kind_en) -> None:
    with pytest.raises(rj.FileRejected) as info:
        upload_table(data, KNOWN, LIMITS)
    assert info.value.code == code
    message = info.value.as_dict("名单.xlsx")
    for text in (message["message_zh"], message["message_en"]):
        assert "名单.xlsx" in text
        assert not re.search(r"(?i)calamine|context|error|zip|xml|0x", text), text
    assert kind_en is None or kind_en in message["message_en"]


def test_a_damaged_workbook_is_not_called_a_csv_encoding_problem() -> None:
    damaged = bytes(range(256)) * 40  # what is left of an .xlsx whose first bytes are gone
    assert _refused(damaged) == rj.ENCODING_UNDECODABLE
    error = refusal_for_name(rj.FileRejected(rj.ENCODING_UNDECODABLE, "x"), "名单.XLSX")
    assert error.code == rj.WORKBOOK_DAMAGED
    same = rj.FileRejected(rj.ENCODING_UNDECODABLE, "x")
    assert refusal_for_name(same, "名单.csv") is same


# Rows of inspections under HEADER, with the cells a clerk merged left empty, as Excel leaves
# them: 样品名称 merged over the first three rows, 检测结论 over the last two.
_MERGED_ROWS = [["T1", "91110000600037341L", "奶粉", "2024-04-01", "合格"],
                ["T2", "91110000600037341L", None, "2024-04-02", "不合格"],
                ["T3", "91110000600037341L", None, "2024-04-03", "合格"],
                ["T4", "91110000600037341L", "红酒", "2024-04-04", None]]
_MERGED_READ = [["奶粉", "合格"], ["奶粉", "不合格"], ["奶粉", "合格"], ["红酒", "合格"]]


def test_merged_cells_of_a_column_are_read_in_every_row_they_span() -> None:
    """The table starts in column B under a title merged across it, and ends with a note merged
    across it. The column merges under the header are read in each of their rows; the title and
    the note, merged across columns, stay a title and a footer."""
    def write(sheet) -> None:
        sheet.merge_range(0, 1, 0, 5, "抽检结果")
        sheet.write_row(2, 1, HEADER.split(","))
        for r, row in enumerate(_MERGED_ROWS, start=3):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    sheet.write_string(r, c, value)
        sheet.merge_range(3, 3, 5, 3, "奶粉")
        sheet.merge_range(5, 5, 6, 5, "合格")
        sheet.merge_range(8, 1, 8, 5, "备注：以上数据截至 6 月 30 日")

    table = upload_table(_xlsx(write), KNOWN, LIMITS)
    assert table.rows.select("c2", "c4").rows() == [tuple(r) for r in _MERGED_READ]
    assert table.rows[SOURCE_ROW].to_list() == [4, 5, 6, 7]
    assert [(m.column, m.first_row, m.last_row) for m in table.filled] == [
        ("样品名称", 4, 6), ("检测结论", 6, 7)]
    assert [n.row for n in table.notes] == [9]


def test_merged_cells_of_an_xls_workbook_are_read_too() -> None:
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("数据")
    for c, name in enumerate(HEADER.split(",")):
        sheet.write(0, c, name)
    for r, row in enumerate(_MERGED_ROWS, start=1):
        for c, value in enumerate(row):
            if value is not None and (r, c) not in ((1, 2), (3, 4)):
                sheet.write(r, c, value)
    sheet.write_merge(1, 3, 2, 2, "奶粉")
    sheet.write_merge(3, 4, 4, 4, "合格")
    buf = io.BytesIO()
    book.save(buf)
    table = upload_table(buf.getvalue(), KNOWN, LIMITS)
    assert table.format == "xls"
    assert table.rows.select("c2", "c4").rows() == [tuple(r) for r in _MERGED_READ]
    assert [(m.column, m.first_row, m.last_row) for m in table.filled] == [
        ("样品名称", 2, 4), ("检测结论", 4, 5)]


def test_the_data_sheet_is_the_one_whose_header_matches_not_the_first() -> None:
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf)
    book.add_worksheet("填表说明").write_column(0, 0, ["填表说明", "1. 检测编号必填", "2. 日期"])
    book.add_worksheet("汇总").write_row(0, 0, ["检测编号", "合计"])  # one known header: less
    data = book.add_worksheet("抽检数据")
    data.write_row(0, 0, HEADER.split(","))
    data.write_row(1, 0, ROW.split(","))
    book.close()
    table = upload_table(buf.getvalue(), KNOWN, LIMITS)
    assert (table.sheet, table.rows.height) == ("抽检数据", 1)


def _sheets(*sheets: tuple[str, list[str], bool]) -> bytes:
    """A workbook of (name, rows as CSV lines, hidden) sheets; the first shown one active."""
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(buf)
    written = [(book.add_worksheet(name), rows, hidden) for name, rows, hidden in sheets]
    next(sheet for sheet, _, hidden in written if not hidden).activate()
    for sheet, rows, hidden in written:
        for r, line in enumerate(rows):
            sheet.write_row(r, 0, line.split(","))
        if hidden:
            sheet.hide()
    book.close()
    return buf.getvalue()


@pytest.mark.parametrize(("sheets", "read"), [
    # The shown data sheet, whatever hidden sheets hold.
    ([("旧", [HEADER, ROW], True), ("新", [HEADER, ROW, ROW], False)], "新"),
    # A shown header without rows, and rows on a hidden sheet: the hidden one holds the list.
    ([("空表", [HEADER], False), ("数据", [HEADER, ROW], True)], "数据"),
    # No sheet has rows under a header: the best header is read (and found to be empty).
    ([("说明", ["检测编号,合计"], False), ("表", [HEADER], False)], "表"),
])
def test_the_sheet_read_is_the_one_shown_data_sheet(sheets, read) -> None:
    try:
        table = upload_table(_sheets(*sheets), KNOWN, LIMITS)
    except rj.FileRejected as refused:
        assert refused.code == rj.NO_DATA_ROWS and read == "表"
        return
    assert table.sheet == read


@pytest.mark.parametrize("hidden", [False, True])
def test_several_data_sheets_in_one_group_are_refused(hidden) -> None:
    data = _sheets(("封面", ["抽检结果"], False), ("一月", [HEADER, ROW], hidden),
                   ("二月", [HEADER, ROW], hidden))
    with pytest.raises(rj.FileRejected) as refused:
        upload_table(data, KNOWN, LIMITS)
    assert (refused.value.code, refused.value.detail) == (rj.SEVERAL_DATA_SHEETS, "一月, 二月")


def _limits(**overrides: int) -> Limits:
    return Limits(**{**LIMITS.__dict__, **overrides})


def test_size_limits() -> None:
    data = (f"{HEADER}\n" + f"{ROW}\n" * 10).encode()
    assert _refused(data, _limits(max_upload_bytes=100)) == rj.FILE_TOO_LARGE
    assert _refused(data, _limits(max_rows=9)) == rj.TOO_MANY_ROWS
    assert _refused(data, _limits(max_columns=4)) == rj.TOO_MANY_COLUMNS
    assert _refused(data, _limits(max_cells=49)) == rj.TOO_MANY_CELLS
    assert _refused(data, _limits(max_cell_chars=17)) == rj.CELL_TOO_LONG
    assert upload_table(data, KNOWN, _limits(max_rows=10, max_cells=50)).rows.height == 10


def test_xlsx_unpacked_size_is_checked_before_parsing() -> None:
    # A zip whose directory promises far more than its few bytes: refused from the directory.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/worksheets/sheet1.xml", "0" * 2_000_000)
    assert _refused(buf.getvalue(), _limits(max_xlsx_uncompressed_bytes=1_000_000)) == (
        rj.XLSX_TOO_LARGE
    )


def test_ditto_marks_are_read_as_the_cell_above() -> None:
    """同上, 仝上 and 〃, alone in a cell (spaces around them aside), repeat the value above,
    a run of them the last value before it. A mark in the first row or under an empty cell
    stays as written, and so does text that only contains the word (同上海)."""
    data = "\n".join([
        HEADER,
        "T1,同上,奶粉,2024-04-01,合格",
        "T2,91110000600037341L,同上海,2024-04-01,不合格",
        "T3,同上,\u3000同上 ,2024-04-02,〃",
        "T4,仝上,,〃,〃",
        "T5,〃,同上,2024-04-03,合格",
    ]).encode()
    table = upload_table(data, KNOWN, LIMITS)
    assert table.rows.drop(SOURCE_ROW).rows() == [
        ("T1", "同上", "奶粉", "2024-04-01", "合格"),
        ("T2", "91110000600037341L", "同上海", "2024-04-01", "不合格"),
        ("T3", "91110000600037341L", "同上海", "2024-04-02", "不合格"),
        ("T4", "91110000600037341L", None, "2024-04-02", "不合格"),
        ("T5", "91110000600037341L", "同上", "2024-04-03", "合格"),
    ]
    assert [(f.kind, f.column, f.first_row, f.last_row) for f in table.filled] == [
        ("ditto", "统一社会信用代码", 4, 6), ("ditto", "样品名称", 4, 4),
        ("ditto", "检测日期", 5, 5), ("ditto", "检测结论", 4, 5)]


def test_ditto_marks_in_a_system_export_are_values() -> None:
    """JSON Lines and Parquet come from systems, which write every value out."""
    frame = pl.DataFrame({"检测编号": ["T1", "T2"], "样品名称": ["奶粉", "同上"]})
    buf = io.BytesIO()
    frame.write_parquet(buf)
    table = upload_table(buf.getvalue(), KNOWN, LIMITS)
    assert table.rows["c1"].to_list() == ["奶粉", "同上"]
    assert table.filled == []
