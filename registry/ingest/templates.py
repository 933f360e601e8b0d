"""Council templates and the accepted headers: what `registry template` and `registry columns`
give a clerk.

Every fact here is asked of its owner, never written here: headers, aliases, types, allowed
values, meanings and examples come from the dataset's contract (``schemas/*.yaml``); yes/no words
and country names from the shared vocabulary (``schemas/reference/``); cities and upload modes
from the regions (``config/regions.yaml``); the columns a region expects filled from the batch
gate's null ceilings and the earliest plausible date from ``config/quality.yaml``. A new alias or
value is a contract edit, and the next template carries it.

A workbook template has the data sheet first and the instructions (填表说明) second: the
registry's reader takes the first sheet that has content, so a clerk who fills in the data sheet
and uploads the workbook as it is sends exactly that sheet.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

import xlsxwriter

from registry.config.contracts import ColumnSpec, Contract, Vocabulary
from registry.config.quality import QualityConfig
from registry.config.regions import Region, RegionConfig

TemplateFormat = Literal["xlsx", "csv"]
INSTRUCTIONS_SHEET = "填表说明"
# How a template marks a required header; the reader ignores it (contracts.header_key).
REQUIRED_MARK = "*"
# Rows of the data sheet that carry the column formats and dropdowns: all of them but the header.
_LAST_EXCEL_ROW = 1_048_575
# Excel refuses a dropdown whose values, joined by commas, exceed 255 characters.
_EXCEL_LIST_LIMIT = 255
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_CJK = re.compile(r"[\u3400-\u9fff]")

RequirementKind = Literal["required", "conditional", "expected", "optional"]


class UnknownName(ValueError):
    """A dataset or region the configuration does not know, told in Chinese and English."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.zh = zh
        self.en = en


@dataclass(frozen=True)
class Requirement:
    """Whether a column must be filled, in both languages. ``expected``: optional for a row,
    but a batch of the region with too many empty cells is held by the batch gate."""

    kind: RequirementKind
    zh: str
    en: str


@dataclass(frozen=True)
class AllowedValue:
    """One value a column takes (``value``: how the registry stores it) and every spelling of it
    the registry accepts, the one a template offers first."""

    value: str
    spellings: tuple[str, ...]

    @property
    def offered(self) -> str:
        """The spelling a template's dropdown offers: the first Chinese one, else the value."""
        return next((s for s in self.spellings if _CJK.search(s)), self.value)


@dataclass(frozen=True)
class TemplateColumn:
    spec: ColumnSpec
    requirement: Requirement
    format_zh: str
    format_en: str
    # Empty where a column takes free text (or, for cities, any region's, with no region given).
    values: tuple[AllowedValue, ...]
    example: str

    @property
    def header(self) -> str:
        """The column's header as a template writes it: its Chinese label, marked when
        required."""
        marked = self.requirement.kind == "required"
        return (REQUIRED_MARK if marked else "") + self.spec.label_zh

    @property
    def dropdown(self) -> tuple[str, ...]:
        """The values a template's dropdown offers (none for free text)."""
        if self.spec.dtype in ("enum", "boolean", "city"):
            return tuple(v.offered for v in self.values)
        return ()


@dataclass(frozen=True)
class DatasetTemplate:
    """A dataset's template, for one region or for any."""

    contract: Contract
    region: Region | None
    columns: tuple[TemplateColumn, ...]
    # Lines (zh, en) that hold for the whole file, such as a region's complete-list uploads.
    notes: tuple[tuple[str, str], ...]
    earliest_date: date

    def file_name(self, fmt: TemplateFormat) -> str:
        """``merchants_template_SH.xlsx``; without a region ``merchants_template.xlsx``."""
        suffix = f"_{self.region.code}" if self.region else ""
        return f"{self.contract.name}_template{suffix}.{fmt}"

    @property
    def data_sheet(self) -> str:
        """The data sheet's name: the dataset's Chinese title, as Excel allows sheet names."""
        return _SHEET_NAME_FORBIDDEN.sub("、", self.contract.title_zh)[:31]


def dataset_template(
    contracts: Mapping[str, Contract],
    vocabulary: Vocabulary,
    regions: RegionConfig,
    quality: QualityConfig,
    dataset: str,
    region: str | None = None,
) -> DatasetTemplate:
    """The template of ``dataset`` for ``region`` (None: for any region).

    Raises :class:`UnknownName` for a dataset or region the configuration does not know."""
    if dataset not in contracts:
        raise UnknownName(f"未知的数据集「{dataset}」，可选：{'、'.join(contracts)}",
                          f"unknown dataset {dataset!r}; known: {', '.join(contracts)}")
    if region is not None and region not in regions.regions:
        raise UnknownName(f"未知的地区「{region}」，可选：{'、'.join(regions.regions)}",
                          f"unknown region {region!r}; known: {', '.join(regions.regions)}")
    contract = contracts[dataset]
    chosen = regions.regions[region] if region else None
    scope = [chosen] if chosen else list(regions.regions.values())
    ceilings = {r.code: quality.null_ceilings.of(r.code, dataset) for r in scope}
    columns = tuple(
        TemplateColumn(
            col,
            _requirement(col, contract, scope, ceilings),
            *_format(col, contract, quality),
            values=_allowed_values(col, vocabulary, scope if chosen else []),
            example=_example(col, chosen),
        )
        for col in contract.columns
    )
    notes: list[tuple[str, str]] = []
    for r in scope:
        if r.upload_mode(dataset) == "replace":
            notes.append((
                f"{r.name_zh}（{r.code}）的{contract.title_zh}按全量上传：每次上传须是完整的当前"
                "名单，名单中没有的记录将被撤下。",
                f"{r.name_en} ({r.code}) uploads its {contract.title_en} as the complete current "
                "list: each upload must hold every record, and a record missing from it is "
                "withdrawn.",
            ))
    return DatasetTemplate(contract, chosen, columns, tuple(notes), quality.dates.earliest)


def _requirement(col: ColumnSpec, contract: Contract, scope: list[Region],
                 ceilings: Mapping[str, Mapping[str, float]]) -> Requirement:
    if col.required:
        return Requirement("required", "必填", "required")
    if col.required_when:
        other = contract.by_name[col.required_when.column]
        value = col.required_when.equals
        shown = next((v.offered for v in _enum_values(other) if v.value == value), value)
        return Requirement(
            "conditional",
            f"{other.label_zh}为「{shown}」时必填",
            f"required when {other.name} is {value} ({shown})",
        )
    expected = [(r, ceilings[r.code][col.name]) for r in scope
                if ceilings[r.code].get(col.name, 1.0) < 1.0]
    if not expected:
        return Requirement("optional", "选填", "optional")
    zh = "；".join(f"{r.name_zh}（{r.code}）空缺不得超过{c:.0%}的行，否则整批暂扣"
                  for r, c in expected)
    en = "; ".join(f"in {r.name_en} ({r.code}) a batch with more than {c:.0%} of its rows "
                   "empty here is held" for r, c in expected)
    if len(scope) == 1:
        return Requirement("expected", f"应填：{zh}", f"expected: {en}")
    return Requirement("optional", f"选填；{zh}", f"optional; {en}")


def _format(col: ColumnSpec, contract: Contract, quality: QualityConfig) -> tuple[str, str]:
    """The column's type and format in words, with the rules a row is checked against."""
    zh, en = {
        "string": ("文本", "text"),
        "uscc": ("18位统一社会信用代码", "18-character unified social credit code"),
        "enum": ("从下拉列表中选择", "one of the listed values"),
        "boolean": ("是 / 否", "yes / no"),
        "date": ("日期，如 2025-03-01（也可写 2025/3/1 或 2025年3月1日）",
                 "date, e.g. 2025-03-01 (2025/3/1 and 2025年3月1日 are accepted too)"),
        "float": ("数字", "number"),
        "list": ("多项用顿号（、）分隔", "several items separated by 、"),
        "country_list": ("国家名称或两位代码，多项用顿号（、）分隔",
                         "country names or two-letter codes, several separated by 、"),
        "city": ("本地区的城市", "a city of the uploading region"),
        "phone": ("手机号，或带区号的固定电话", "mobile number, or landline with area code"),
    }[col.dtype]
    parts = [(zh, en)]
    if col.max_length:
        parts.append((f"最多{col.max_length}字", f"at most {col.max_length} characters"))
    if col.min is not None and col.max is not None:
        parts.append((f"{col.min:g}至{col.max:g}", f"from {col.min:g} to {col.max:g}"))
    elif col.min is not None:
        parts.append((f"不小于{col.min:g}", f"at least {col.min:g}"))
    elif col.max is not None:
        parts.append((f"不大于{col.max:g}", f"at most {col.max:g}"))
    if col.dtype == "date":
        parts.append((f"不早于{quality.dates.earliest:%Y-%m-%d}",
                      f"not before {quality.dates.earliest:%Y-%m-%d}"))
    if col.no_end is not None:
        word = col.no_end.words[0]
        parts.append((f"无截止日期的写“{word}”", f"{word} for no end"))
    if col.not_before:
        other = contract.by_name[col.not_before]
        parts.append((f"不早于{other.label_zh}", f"not before {other.name}"))
    if col.not_future:
        parts.append(("不晚于今天", "not in the future"))
    if col.pii:
        parts.append(("个人信息：只存档，不发布", "personal data: archived, never published"))
    return "；".join(z for z, _ in parts), "; ".join(e for _, e in parts)


def _enum_values(col: ColumnSpec) -> tuple[AllowedValue, ...]:
    return tuple(AllowedValue(value, (*spellings, *col.read_also.get(value, ())))
                 for value, spellings in (col.values or {}).items())


def _allowed_values(col: ColumnSpec, vocabulary: Vocabulary, scope: list[Region]
                    ) -> tuple[AllowedValue, ...]:
    """Every value the column takes, with its accepted spellings. Cities only for a chosen
    region: with none, the column takes the uploading region's, whichever that is."""
    if col.dtype == "enum":
        return _enum_values(col)
    if col.dtype == "boolean":
        return tuple(
            AllowedValue(str(truth).lower(),
                         tuple(word for word, t in vocabulary.booleans.items() if t is truth))
            for truth in (True, False)
        )
    if col.dtype == "city":
        return tuple(AllowedValue(city, (city, *aliases))
                     for r in scope for city, aliases in r.cities.items())
    if col.dtype == "country_list":
        names: dict[str, list[str]] = {}
        for name, code in vocabulary.countries.items():
            names.setdefault(code, []).append(name)
        return tuple(AllowedValue(code, tuple(n for n in spellings if n != code.casefold()))
                     for code, spellings in sorted(names.items()))
    return ()


def _example(col: ColumnSpec, region: Region | None) -> str:
    """The contract's example, but a city from the region itself: a city of another region is
    refused (CITY_NOT_IN_REGION)."""
    if col.dtype == "city" and region is not None:
        return next(iter(region.cities))
    return col.example


# -- files ------------------------------------------------------------------------------------


def template_csv(template: DatasetTemplate) -> bytes:
    """The header row, UTF-8 with a byte-order mark (Excel opens it as UTF-8 only then)."""
    return ("\ufeff" + ",".join(c.header for c in template.columns) + "\r\n").encode("utf-8")


def template_xlsx(template: DatasetTemplate) -> bytes:
    """The workbook: the data sheet (headers with the column's English name and meaning in a
    comment, dropdowns for values from a list, cell formats for dates, numbers and codes) first,
    then 填表说明 (every column: required or not, meaning in Chinese and English, format,
    allowed values, an example)."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    # A fixed creation time: the same contract gives the same bytes.
    book.set_properties({
        "title": f"{template.contract.title_zh} {template.contract.title_en}",
        "created": datetime(2000, 1, 1),
    })
    _write_data_sheet(book, template)
    _write_instructions(book, template)
    book.close()
    return buffer.getvalue()


_HEADER_FILLS: dict[RequirementKind, str] = {
    "required": "#F4B183", "conditional": "#FFE699", "expected": "#FFE699", "optional": "#D9D9D9",
}
_CELL_FORMATS = {
    "date": {"num_format": "yyyy-mm-dd"},
    "float": {"num_format": "0.00"},
    # Codes, phone numbers and ids as text: Excel would otherwise show an 18-digit code in
    # scientific notation and drop a leading zero.
    "text": {"num_format": "@"},
}


def _write_data_sheet(book: Any, template: DatasetTemplate) -> None:
    sheet = book.add_worksheet(template.data_sheet)
    headers = {kind: book.add_format({"bold": True, "bg_color": fill, "border": 1,
                                      "text_wrap": True, "valign": "vcenter"})
               for kind, fill in _HEADER_FILLS.items()}
    cells = {name: book.add_format(spec) for name, spec in _CELL_FORMATS.items()}
    for i, column in enumerate(template.columns):
        spec = column.spec
        sheet.write_string(0, i, column.header, headers[column.requirement.kind])
        sheet.write_comment(0, i, _comment(column), {"x_scale": 2.5, "y_scale": 2})
        kind = spec.dtype if spec.dtype in ("date", "float") else "text"
        width = 14 if spec.dtype in ("date", "boolean", "enum", "city", "float") else 22
        sheet.set_column(i, i, max(width, 2 * len(column.header) + 2), cells[kind])
        validation = _validation(column, template.earliest_date)
        if validation:
            sheet.data_validation(1, i, _LAST_EXCEL_ROW, i, validation)
    sheet.freeze_panes(1, 0)
    sheet.set_row(0, 30)


def _comment(column: TemplateColumn) -> str:
    spec = column.spec
    return (f"{spec.name}: {spec.description.en}\n{column.requirement.en}; {column.format_en}\n"
            f"{spec.description.zh}（{column.requirement.zh}）")


def _validation(column: TemplateColumn, earliest: date) -> dict[str, Any] | None:
    """The data validation of a column's cells: a dropdown for values from a list, a range for
    numbers and dates, a length for text. Messages name the column in both languages."""
    spec = column.spec
    title = spec.label_zh[:32]
    if column.dropdown:
        joined = ",".join(column.dropdown)
        if len(joined) > _EXCEL_LIST_LIMIT:
            raise ValueError(f"{spec.name}: the dropdown exceeds Excel's 255 characters")
        return {"validate": "list", "source": list(column.dropdown),
                "error_title": title,
                "error_message": f"请从下拉列表中选择：{'、'.join(column.dropdown)}\n"
                                 f"Choose from the list: {', '.join(column.dropdown)}"}
    if spec.dtype == "float" and (spec.min is not None or spec.max is not None):
        bounds: dict[str, Any]
        if spec.min is not None and spec.max is not None:
            bounds = {"criteria": "between", "minimum": spec.min, "maximum": spec.max}
        elif spec.min is not None:
            bounds = {"criteria": ">=", "value": spec.min}
        else:
            bounds = {"criteria": "<=", "value": spec.max}
        return {"validate": "decimal", **bounds, "error_title": title,
                "error_message": f"{column.format_zh}\n{column.format_en}"}
    if spec.dtype == "date":
        # A column that may say "no end" in words (长期) only warns: Excel's date check would
        # refuse the word.
        return {"validate": "date", "criteria": ">=",
                "value": datetime.combine(earliest, datetime.min.time()),
                "error_title": title,
                "error_message": f"{column.format_zh}\n{column.format_en}",
                **({"error_type": "warning"} if spec.no_end is not None else {})}
    if spec.dtype == "uscc":
        return {"validate": "length", "criteria": "==", "value": 18, "error_title": title,
                "error_message": f"{column.format_zh}\n{column.format_en}"}
    if spec.max_length:
        return {"validate": "length", "criteria": "<=", "value": spec.max_length,
                "error_title": title,
                "error_message": f"最多{spec.max_length}字\nAt most {spec.max_length} characters"}
    return None


_INSTRUCTION_HEADER = (
    ("列名 Column", 26), ("是否必填 Required", 24), ("类型与格式 Type and format", 34),
    ("说明", 30), ("Meaning", 36), ("可填值 Allowed values", 40), ("示例 Example", 22),
)


def _write_instructions(book: Any, template: DatasetTemplate) -> None:
    sheet = book.add_worksheet(INSTRUCTIONS_SHEET)
    contract, region = template.contract, template.region
    title = book.add_format({"bold": True, "font_size": 14})
    wrap = book.add_format({"text_wrap": True, "valign": "top", "border": 1})
    head = book.add_format({"bold": True, "bg_color": "#D9D9D9", "border": 1, "text_wrap": True})
    place = f"（{region.name_zh} {region.code}）" if region else ""
    place_en = f" ({region.name_en}, {region.code})" if region else ""
    lines = [
        (f"{contract.title_zh}填表说明{place}", f"How to fill in the {contract.title_en} "
         f"template{place_en}, contract {contract.name} v{contract.version}"),
        (f"在第一个工作表「{template.data_sheet}」中每行填写一条记录，不要修改表头；"
         f"带 {REQUIRED_MARK} 的列必填。上传前可用 registry check 检查。",
         f"Fill in one record per row of the first sheet ({template.data_sheet}) and keep its "
         f"header as it is; columns marked {REQUIRED_MARK} are required. "
         "`registry check` checks a file before you upload it."),
        *template.notes,
    ]
    row = 0
    for i, (zh, en) in enumerate(lines):
        sheet.write_string(row, 0, zh, title if i == 0 else None)
        sheet.write_string(row + 1, 0, en)
        row += 2
    row += 1
    for i, (text, width) in enumerate(_INSTRUCTION_HEADER):
        sheet.write_string(row, i, text, head)
        sheet.set_column(i, i, width)
    for column in template.columns:
        row += 1
        sheet.write_row(row, 0, [
            # Label and name in one cell: a row of this sheet must never read as a header.
            column.spec.label,
            f"{column.requirement.zh}\n{column.requirement.en}",
            f"{column.format_zh}\n{column.format_en}",
            column.spec.description.zh,
            column.spec.description.en,
            values_text(column),
            column.example,
        ], wrap)


def values_text(column: TemplateColumn) -> str:
    """A column's allowed values in words: each value's accepted spellings, the one a template
    offers first (``有效 = active（也可 also: 正常）``). Empty for free text."""
    if column.spec.dtype == "country_list":
        return ("国家中文名、英文名或两位代码，见 schemas/reference/countries.yaml\n"
                "Chinese or English country names or two-letter codes, listed in "
                "schemas/reference/countries.yaml")
    if column.spec.dtype == "city" and not column.values:
        return "上传地区的城市（见 registry columns --region）\nA city of the uploading region"
    lines = []
    for value in column.values:
        others = [s for s in value.spellings if s != value.offered]
        also = f"（也可 also: {'、'.join(others)}）" if others else ""
        named = "" if value.value == value.offered else f" = {value.value}"
        lines.append(f"{value.offered}{named}{also}")
    return "\n".join(lines)


def columns_as_json(template: DatasetTemplate) -> dict[str, Any]:
    """``registry columns --json``: the accepted headers of a dataset, column by column."""
    contract = template.contract
    return {
        "dataset": contract.name,
        "title_zh": contract.title_zh,
        "title_en": contract.title_en,
        "contract_version": contract.version,
        "region": template.region.code if template.region else None,
        "columns": [
            {
                "name": c.spec.name,
                "header_zh": c.spec.label_zh,
                "template_header": c.header,
                "aliases": c.spec.aliases,
                "required": c.requirement.kind,
                "required_zh": c.requirement.zh,
                "required_en": c.requirement.en,
                "type": c.spec.dtype,
                "format_zh": c.format_zh,
                "format_en": c.format_en,
                "description_zh": c.spec.description.zh,
                "description_en": c.spec.description.en,
                "values": [{"value": v.value, "accepted": list(v.spellings)} for v in c.values],
                "example": c.example,
                "personal_data": c.spec.pii,
            }
            for c in template.columns
        ],
        "ignored_headers": contract.ignore,
        "notes": [{"zh": zh, "en": en} for zh, en in template.notes],
    }
