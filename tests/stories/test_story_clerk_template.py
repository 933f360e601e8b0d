"""A council clerk asks the registry for a template, fills in one row as its 填表说明 sheet says,
and checks the file: every row is accepted. The workbook offers dropdowns for the columns that
take listed values, names each column in English in a comment, and the CSV template's header is
one the registry accepts. For every dataset the registry takes."""

from __future__ import annotations

import datetime as dt
import json
import re
import zipfile
from pathlib import Path

import fastexcel
import pytest
import xlsxwriter
from typer.testing import CliRunner
from xlsxwriter.utility import xl_col_to_name

from registry.cli import app
from registry.config.contracts import load_contracts
from registry.config.settings import Settings

runner = CliRunner()
CONTRACTS = load_contracts(Settings(_env_file=None).schemas_dir)
# (dataset, uploading council): one region each, Shanghai's merchants the story's own.
DATASETS = [("merchants", "SH"), ("complaints", "ZJ"), ("inspections", "AH"),
            ("gift_evaluations", "JS")]


def _sheet(path: Path, name: str) -> list[list[str | None]]:
    reader = fastexcel.read_excel(path.read_bytes())
    sheet = reader.load_sheet(name, header_row=None, dtypes="string")
    return [list(row) for row in sheet.to_polars().rows()]


def _instructions(path: Path) -> dict[str, dict[str, str]]:
    """填表说明 as a clerk reads it: per column (its Chinese label), each field of its row."""
    rows = _sheet(path, "填表说明")
    at = next(i for i, row in enumerate(rows) if row[0] == "列名 Column")
    fields = [cell or "" for cell in rows[at]]
    return {row[0].split(" (")[0]: dict(zip(fields, (c or "" for c in row), strict=True))
            for row in rows[at + 1:] if row[0]}


def _filled_as_instructed(template: Path, filled: Path) -> None:
    """The data sheet with one row: each column's example from 填表说明, typed as Excel stores
    what a clerk types into the column (a date, a number or text)."""
    data_sheet = fastexcel.read_excel(template.read_bytes()).sheet_names[0]
    header = [cell or "" for cell in _sheet(template, data_sheet)[0]]
    notes = _instructions(template)
    book = xlsxwriter.Workbook(filled)
    sheet = book.add_worksheet(data_sheet)
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(0, 0, header)
    for i, name in enumerate(header):
        note = notes[name.lstrip("*")]
        example, kind = note["示例 Example"], note["类型与格式 Type and format"]
        if kind.startswith("日期"):
            sheet.write_datetime(1, i, dt.datetime.fromisoformat(example), day)
        elif kind.startswith("数字"):
            sheet.write_number(1, i, float(example))
        else:
            sheet.write_string(1, i, example)
    book.close()


def _check(file: Path, region: str, dataset: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["check", str(file), "--region", region, "--dataset", dataset,
                                 "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize(("dataset", "region"), DATASETS)
def test_a_clerk_fills_in_the_template_as_its_instructions_say_and_every_row_is_accepted(
    tmp_path, monkeypatch, dataset: str, region: str
) -> None:
    monkeypatch.chdir(tmp_path)
    made = runner.invoke(app, ["template", dataset, "--region", region])
    assert made.exit_code == 0, made.output
    template = tmp_path / f"{dataset}_template_{region}.xlsx"
    assert made.stdout.strip() == template.name and template.exists()
    # The data sheet first, so that the workbook sent as it is sends the data.
    assert fastexcel.read_excel(template.read_bytes()).sheet_names[1:] == ["填表说明"]

    filled = tmp_path / "本月上报.xlsx"
    _filled_as_instructed(template, filled)
    code, checked = _check(filled, region, dataset)
    assert (code, checked["rows"], checked["accepted"]) == (0, 1, 1), checked

    # Dropdowns offer the listed values of every enum column; comments name each column.
    contract = CONTRACTS[dataset]
    with zipfile.ZipFile(template) as xlsx:
        sheet_xml = xlsx.read("xl/worksheets/sheet1.xml").decode()
        comments = xlsx.read("xl/comments1.xml").decode()
    lists = dict(re.findall(r'<dataValidation type="list"[^>]*sqref="([A-Z]+)2:[^"]*">'
                            r"<formula1>([^<]*)</formula1>", sheet_xml))
    for i, column in enumerate(contract.columns):
        assert f"{column.name}: {column.description.en}" in comments
        if column.dtype == "enum":
            offered = lists[xl_col_to_name(i)].strip('"').split(",")
            assert len(offered) == len(column.values or {})
            assert all(any(value in spellings for spellings in column.values.values())
                       for value in offered), offered

    # The CSV template: a header the registry takes, and no rows yet.
    made = runner.invoke(app, ["template", dataset, "--region", region, "--format", "csv",
                               "-o", "空白.csv"])
    assert made.exit_code == 0, made.output
    assert (tmp_path / "空白.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    code, checked = _check(tmp_path / "空白.csv", region, dataset)
    assert (code, [e["code"] for e in checked["file_errors"]]) == (2, ["NO_DATA_ROWS"])


def test_shanghais_merchants_template_says_what_shanghai_requires(tmp_path) -> None:
    template = tmp_path / "sh.xlsx"
    assert runner.invoke(app, ["template", "merchants", "--region", "SH", "-o", str(template)]
                         ).exit_code == 0
    notes = _instructions(template)
    for label in ("经营地址", "区县"):
        required = notes[label]["是否必填 Required"]
        assert "应填" in required and "上海市" in required and "held" in required
    assert notes["备案编号"]["是否必填 Required"].startswith("必填")
    assert notes["原产国"]["是否必填 Required"].startswith("备案类别为「进口商品」时必填")
    assert notes["所在城市"]["示例 Example"] == "上海"
    # A complete-list upload: said on the instructions sheet, in both languages.
    text = "\n".join(cell or "" for row in _sheet(template, "填表说明") for cell in row)
    assert "全量上传" in text and "complete current list" in text
    # Jiangsu's template of the same dataset leaves the address optional.
    other = tmp_path / "js.xlsx"
    runner.invoke(app, ["template", "merchants", "--region", "JS", "-o", str(other)])
    assert _instructions(other)["经营地址"]["是否必填 Required"].startswith("选填")
