"""Why an upload or a row was refused: stable machine codes with messages for council clerks.

Every message names the file, the row (for row errors), the column and the reason, in Chinese
and in English. Codes are part of the public interface (receipts, ``registry check --json``):
never rename one; add a new code instead.
"""

from __future__ import annotations

import re

import polars as pl

# -- file-level codes: the whole upload is refused -----------------------------------------
FILE_TOO_LARGE = "FILE_TOO_LARGE"
XLSX_TOO_LARGE = "XLSX_TOO_LARGE"
FILE_EMPTY = "FILE_EMPTY"
FILE_UNREADABLE = "FILE_UNREADABLE"
ENCODING_UNDECODABLE = "ENCODING_UNDECODABLE"
CSV_MALFORMED = "CSV_MALFORMED"
NO_HEADER = "NO_HEADER"
BLANK_HEADER = "BLANK_HEADER"
UNKNOWN_COLUMN = "UNKNOWN_COLUMN"
DUPLICATE_COLUMN = "DUPLICATE_COLUMN"
MISSING_COLUMN = "MISSING_COLUMN"
NO_DATA_ROWS = "NO_DATA_ROWS"
TOO_MANY_ROWS = "TOO_MANY_ROWS"
TOO_MANY_COLUMNS = "TOO_MANY_COLUMNS"
TOO_MANY_CELLS = "TOO_MANY_CELLS"
CELL_TOO_LONG = "CELL_TOO_LONG"
UNKNOWN_DATASET = "UNKNOWN_DATASET"
KEY_UNSAFE = "KEY_UNSAFE"
READ_TIME_LIMIT = "READ_TIME_LIMIT"
READ_MEMORY_LIMIT = "READ_MEMORY_LIMIT"
WORKBOOK_DAMAGED = "WORKBOOK_DAMAGED"
WORKBOOK_ENCRYPTED = "WORKBOOK_ENCRYPTED"
SEVERAL_DATA_SHEETS = "SEVERAL_DATA_SHEETS"
NOT_A_SPREADSHEET = "NOT_A_SPREADSHEET"

# -- row-level codes: the row goes to quarantine ---------------------------------------------
REQUIRED_MISSING = "REQUIRED_MISSING"
CONDITIONAL_REQUIRED_MISSING = "CONDITIONAL_REQUIRED_MISSING"
USCC_INVALID = "USCC_INVALID"
NUMBER_SHORTENED = "NUMBER_SHORTENED"
DATE_INVALID = "DATE_INVALID"
DATE_IN_FUTURE = "DATE_IN_FUTURE"
DATE_ORDER_INVALID = "DATE_ORDER_INVALID"
BOOLEAN_INVALID = "BOOLEAN_INVALID"
ENUM_INVALID = "ENUM_INVALID"
NUMBER_INVALID = "NUMBER_INVALID"
VALUE_OUT_OF_RANGE = "VALUE_OUT_OF_RANGE"
TEXT_TOO_LONG = "TEXT_TOO_LONG"
LIST_EMPTY = "LIST_EMPTY"
COUNTRY_UNKNOWN = "COUNTRY_UNKNOWN"
CITY_UNKNOWN = "CITY_UNKNOWN"
CITY_NOT_IN_REGION = "CITY_NOT_IN_REGION"
PHONE_INVALID = "PHONE_INVALID"
PII_IN_TEXT = "PII_IN_TEXT"
DUPLICATE_KEY = "DUPLICATE_KEY"
DUPLICATE_KEY_SETTLED = "DUPLICATE_KEY_SETTLED"
DUPLICATE_ROW = "DUPLICATE_ROW"

# code -> (zh, en). Placeholders: {file} {row} {column} {value} {detail}.
FILE_MESSAGES: dict[str, tuple[str, str]] = {
    FILE_TOO_LARGE: (
        "文件「{file}」过大（{detail}），未处理。请拆分后分别上传。",
        "File '{file}' is too large ({detail}) and was not processed. Split it and upload the "
        "parts.",
    ),
    XLSX_TOO_LARGE: (
        "文件「{file}」解压后过大（{detail}），未处理。请删除多余的工作表或格式后重新上传。",
        "File '{file}' is too large once unpacked ({detail}) and was not processed. Remove extra "
        "sheets or formatting and upload it again.",
    ),
    FILE_EMPTY: (
        "文件「{file}」是空文件。",
        "File '{file}' is empty.",
    ),
    FILE_UNREADABLE: (
        "无法读取文件「{file}」：{detail}。请另存为 .xlsx 或 UTF-8 编码的 .csv 后重新上传。",
        "File '{file}' could not be read: {detail}. Save it as .xlsx or as a UTF-8 .csv and upload "
        "it again.",
    ),
    ENCODING_UNDECODABLE: (
        "文件「{file}」的文字编码无法识别（{detail}）。请另存为 UTF-8 编码的 .csv。",
        "The text encoding of file '{file}' is not recognised ({detail}). Save it as a UTF-8 .csv.",
    ),
    CSV_MALFORMED: (
        "文件「{file}」的 CSV 格式有误：{detail}。",
        "File '{file}' is not well-formed CSV: {detail}.",
    ),
    NO_HEADER: (
        "文件「{file}」前 {detail} 行中没有找到表头。请保留模板的表头行。",
        "No header row was found in the first {detail} rows of file '{file}'. Keep the template's "
        "header row.",
    ),
    BLANK_HEADER: (
        "文件「{file}」第 {detail} 列有数据但没有表头。请补上列名或删除该列。",
        "Column {detail} of file '{file}' has data but no header. Name the column or delete it.",
    ),
    UNKNOWN_COLUMN: (
        "文件「{file}」含有模板以外的列「{detail}」。请删除该列或改用模板列名。",
        "File '{file}' has a column '{detail}' that is not in the template. Delete it or use the "
        "template's column name.",
    ),
    DUPLICATE_COLUMN: (
        "文件「{file}」中有多列都对应「{detail}」。每项内容只能有一列。",
        "Several columns of file '{file}' name '{detail}'. Keep only one.",
    ),
    MISSING_COLUMN: (
        "文件「{file}」缺少必填列「{detail}」。",
        "File '{file}' is missing the required column '{detail}'.",
    ),
    NO_DATA_ROWS: (
        "文件「{file}」有表头但没有数据行。",
        "File '{file}' has a header but no data rows.",
    ),
    TOO_MANY_ROWS: (
        "文件「{file}」行数过多（{detail}）。请拆分后分别上传。",
        "File '{file}' has too many rows ({detail}). Split it and upload the parts.",
    ),
    TOO_MANY_COLUMNS: (
        "文件「{file}」列数过多（{detail}）。",
        "File '{file}' has too many columns ({detail}).",
    ),
    TOO_MANY_CELLS: (
        "文件「{file}」单元格过多（{detail}）。请拆分后分别上传。",
        "File '{file}' has too many cells ({detail}). Split it and upload the parts.",
    ),
    CELL_TOO_LONG: (
        "文件「{file}」中有单元格内容过长（{detail}）。",
        "File '{file}' has a cell that is too long ({detail}).",
    ),
    UNKNOWN_DATASET: (
        "文件「{file}」所在的文件夹「{detail}」不是已知的数据类别。",
        "File '{file}' is in folder '{detail}', which is not a known dataset.",
    ),
    KEY_UNSAFE: (
        "上传路径「{file}」含有不允许的字符或路径段（{detail}），未处理。"
        "请使用普通文件名，重新上传到本地区的数据类别文件夹。",
        "The upload path '{file}' has characters or path segments that are not allowed "
        "({detail}) and was not processed. Upload it again with a plain file name into your "
        "region's dataset folder.",
    ),
    READ_TIME_LIMIT: (
        "读取文件「{file}」超过了时间上限（{detail}），未处理。请拆分后分别上传，"
        "或另存为 UTF-8 编码的 .csv 后重新上传。",
        "Reading file '{file}' took longer than the limit ({detail}); it was not processed. "
        "Split it, or save it as a UTF-8 .csv, and upload it again.",
    ),
    READ_MEMORY_LIMIT: (
        "读取文件「{file}」所需内存超过了上限（{detail}），未处理。请拆分后分别上传，"
        "或删除多余的工作表、格式和空白列后重新上传。",
        "Reading file '{file}' needed more memory than the limit ({detail}); it was not "
        "processed. Split it, or remove extra sheets, formatting and empty columns, and upload "
        "it again.",
    ),
    WORKBOOK_DAMAGED: (
        "文件「{file}」已损坏，无法作为 Excel 工作簿打开。请在 Excel 或 WPS 中打开它，"
        "另存为 .xlsx 后重新上传；打不开时请从原系统重新导出。",
        "File '{file}' is damaged and cannot be opened as an Excel workbook. Open it in Excel or "
        "WPS, save it as .xlsx and upload it again; if it does not open, export it again from "
        "the system it came from.",
    ),
    WORKBOOK_ENCRYPTED: (
        "文件「{file}」设有打开密码，无法读取。请在 Excel 或 WPS 中去掉打开密码"
        "（文件 → 信息 → 保护工作簿 → 用密码进行加密，清空密码），保存后重新上传。",
        "File '{file}' is protected by a password and cannot be read. Remove the password in "
        "Excel or WPS (File → Info → Protect Workbook → Encrypt with Password, clear it), save "
        "it and upload it again.",
    ),
    SEVERAL_DATA_SHEETS: (
        "文件「{file}」中有多个工作表都填有数据（{detail}），无法判断要报送的是哪一个。"
        "请只保留本次要报送的工作表，把其余工作表删除或隐藏，保存后重新上传。",
        "File '{file}' has data on several sheets ({detail}), so which one is to be filed "
        "cannot be told. Keep only the sheet to be filed: delete or hide the others, save the "
        "file and upload it again.",
    ),
    NOT_A_SPREADSHEET: (
        "文件「{file}」不是表格文件（它是{detail}）。请上传按模板填写的 .xlsx 或 .csv 文件。",
        "File '{file}' is not a spreadsheet (it is {detail}). Upload the .xlsx or .csv file "
        "filled in from the template.",
    ),
}

# What a file turned out to be, for NOT_A_SPREADSHEET: the detail names one of these kinds.
FILE_KINDS: dict[str, tuple[str, str]] = {
    "png": ("一张 PNG 图片", "a PNG image"),
    "jpeg": ("一张 JPEG 图片", "a JPEG image"),
    "gif": ("一张 GIF 图片", "a GIF image"),
    "bmp": ("一张 BMP 图片", "a BMP image"),
    "pdf": ("一份 PDF 文档", "a PDF document"),
    "word": ("一份 Word 文档", "a Word document"),
    "powerpoint": ("一份 PowerPoint 演示文稿", "a PowerPoint presentation"),
    "gzip": ("一个 gzip 压缩包", "a gzip archive"),
    "zip": ("一个压缩包，里面没有 Excel 工作簿", "a zip archive without an Excel workbook in it"),
    "7z": ("一个 7z 压缩包", "a 7z archive"),
    "rar": ("一个 RAR 压缩包", "a RAR archive"),
    "ole": ("一份非 Excel 的 Office 文件", "an Office file that is not an Excel workbook"),
}

# Appended to a header problem's message when a close accepted header was found.
DID_YOU_MEAN: dict[str, tuple[str, str]] = {
    UNKNOWN_COLUMN: ("是否应为「{suggestion}」？", "Did you mean '{suggestion}'?"),
    MISSING_COLUMN: ("文件中的「{suggestion}」是否就是这一列？如是，请改用模板的列名。",
                     "Is the file's column '{suggestion}' this one? If so, use the template's "
                     "column name."),
}

ROW_MESSAGES: dict[str, tuple[str, str]] = {
    REQUIRED_MISSING: (
        "「{column}」为必填项，不能为空。",
        "'{column}' is required and is empty.",
    ),
    CONDITIONAL_REQUIRED_MISSING: (
        "「{column}」在{detail}时为必填项，不能为空。",
        "'{column}' is required when {detail}, and is empty.",
    ),
    USCC_INVALID: (
        "「{column}」的值「{value}」不是有效的统一社会信用代码（18位，校验位需正确）。",
        "'{column}' value '{value}' is not a valid unified social credit code (18 characters "
        "with correct check characters).",
    ),
    NUMBER_SHORTENED: (
        "「{column}」的值「{value}」是科学计数法的数字：表格软件把这一列当成了数字，"
        "数字最多只保留 15 位，超出的位数已经丢失，文件里已找不回原来的代码。"
        "请把这一列的单元格格式设为“文本”，重新输入完整的代码后再上传。",
        "'{column}' value '{value}' is a number in scientific notation: the spreadsheet took "
        "the column for numbers, which keep at most 15 digits, so the code's other digits are "
        "lost and the file no longer holds them. Format the column's cells as Text, type the "
        "full codes again and upload the file.",
    ),
    DATE_INVALID: (
        "「{column}」的值「{value}」不是可识别的日期。"
        "请写成 2022-03-01、2022/3/1 或 2022年3月1日。",
        "'{column}' value '{value}' is not a date. "
        "Write it as 2022-03-01, 2022/3/1 or 2022年3月1日.",
    ),
    DATE_IN_FUTURE: (
        "「{column}」的日期「{value}」晚于今天。",
        "'{column}' date '{value}' is in the future.",
    ),
    DATE_ORDER_INVALID: (
        "「{column}」的日期「{value}」早于{detail}。",
        "'{column}' date '{value}' is earlier than {detail}.",
    ),
    BOOLEAN_INVALID: (
        "「{column}」的值「{value}」应为 是/否、Y/N、true/false 或 1/0。",
        "'{column}' value '{value}' must be 是/否, Y/N, true/false or 1/0.",
    ),
    ENUM_INVALID: (
        "「{column}」的值「{value}」不在允许的取值中：{detail}。",
        "'{column}' value '{value}' is not one of the allowed values: {detail}.",
    ),
    NUMBER_INVALID: (
        "「{column}」的值「{value}」不是数字。",
        "'{column}' value '{value}' is not a number.",
    ),
    VALUE_OUT_OF_RANGE: (
        "「{column}」的值「{value}」超出允许范围{detail}。",
        "'{column}' value '{value}' is outside the allowed range {detail}.",
    ),
    TEXT_TOO_LONG: (
        "「{column}」内容过长（最多 {detail} 个字）。",
        "'{column}' is too long (at most {detail} characters).",
    ),
    LIST_EMPTY: (
        "「{column}」的值「{value}」拆分后没有任何内容。多项请用 、 ; , 或 / 分隔。",
        "'{column}' value '{value}' has no items. Separate items with 、 ; , or /.",
    ),
    COUNTRY_UNKNOWN: (
        "「{column}」的值「{value}」中有无法识别的国家或地区。"
        "请使用中文国名或两位国家代码（如 JP）。",
        "'{column}' value '{value}' names a country that is not recognised. Use the Chinese name "
        "or the two-letter ISO code (such as JP).",
    ),
    CITY_UNKNOWN: (
        "「{column}」的值「{value}」不是联盟内的城市。",
        "'{column}' value '{value}' is not a city of the alliance.",
    ),
    CITY_NOT_IN_REGION: (
        "「{column}」的城市「{value}」不属于本地区（{detail}），本地区只能报送本地区的数据。",
        "'{column}' city '{value}' is not in this region ({detail}); a council files only for "
        "its own region.",
    ),
    PHONE_INVALID: (
        "「{column}」不是有效的电话号码（内容不予显示）。",
        "'{column}' is not a valid phone number (value not shown).",
    ),
    PII_IN_TEXT: (
        "「{column}」中有疑似手机号码或身份证号码（{value}）。个人信息不得填写在此列，"
        "请删除后重新上传。",
        "'{column}' holds what looks like a mobile phone or resident ID number ({value}). "
        "Personal data must not be written in this column: remove it and upload the file again.",
    ),
    DUPLICATE_KEY: (
        "「{column}」的值「{value}」在本文件中出现多次，所有重复行均未接收。请只保留一行。",
        "'{column}' value '{value}' appears more than once in this file; none of its rows were "
        "accepted. Keep one row.",
    ),
    DUPLICATE_KEY_SETTLED: (
        "「{column}」的值「{value}」在本文件中出现多次且内容不一致。为免把已暂停或撤销的备案"
        "当作有效，已读取其中最不利的第 {detail} 行，本行未接收。请只保留一行。",
        "'{column}' value '{value}' appears more than once in this file, with different "
        "contents. So as not to read a paused or ended filing as active, row {detail}, the "
        "least trusting of them, was read and this row was not. Keep one row.",
    ),
    DUPLICATE_ROW: (
        "本行（「{column}」为「{value}」）与第 {detail} 行完全相同，只读取一次。",
        "This row ('{column}' '{value}') is the same as row {detail}; it was read once.",
    ),
}

_ROW_PREFIX = ("文件「{file}」第 {row} 行：", "File '{file}', row {row}: ")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


class FileRejected(Exception):
    """The whole upload is refused. ``code`` is stable; ``detail`` fills the message (for
    NOT_A_SPREADSHEET, a key of :data:`FILE_KINDS`). ``did_you_mean`` is a header that the
    column may have been meant as (UNKNOWN_COLUMN), or the file's header that may be the
    missing column (MISSING_COLUMN)."""

    def __init__(self, code: str, detail: object = "", *, did_you_mean: str | None = None):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = str(detail)
        self.did_you_mean = did_you_mean

    def as_dict(self, file: str) -> dict[str, str]:
        """``code``, ``message_zh``, ``message_en``, and ``did_you_mean`` when there is one."""
        zh, en = FILE_MESSAGES[self.code]
        detail_zh, detail_en = FILE_KINDS.get(self.detail, (self.detail, self.detail))
        if self.code != NOT_A_SPREADSHEET:
            detail_zh = detail_en = self.detail
        doc = {
            "code": self.code,
            "message_zh": zh.format(file=file, detail=detail_zh),
            "message_en": en.format(file=file, detail=detail_en),
        }
        if self.did_you_mean and self.code in DID_YOU_MEAN:
            hint_zh, hint_en = DID_YOU_MEAN[self.code]
            doc["message_zh"] += hint_zh.format(suggestion=self.did_you_mean)
            doc["message_en"] += " " + hint_en.format(suggestion=self.did_you_mean)
            doc["did_you_mean"] = self.did_you_mean
        return doc


class FileProblems(Exception):
    """Several file-level problems found in one pass (every header problem at once)."""

    def __init__(self, problems: list[FileRejected]):
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


def _formatted(template: str, fields: dict[str, pl.Expr]) -> pl.Expr:
    """``template`` with its placeholders replaced by the matching column expressions."""
    pieces: list[pl.Expr] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(template):
        if match.start() > pos:
            pieces.append(pl.lit(template[pos : match.start()]))
        pieces.append(fields[match.group(1)].cast(pl.String).fill_null(""))
        pos = match.end()
    if pos < len(template):
        pieces.append(pl.lit(template[pos:]))
    return pl.concat_str(pieces)


def with_row_messages(errors: pl.DataFrame, file: str) -> pl.DataFrame:
    """Add ``message_zh`` and ``message_en`` to a row-error frame.

    ``errors`` needs the columns ``row`` (the clerk's row number), ``code``, ``label`` (how the
    column is named to people), ``value`` (already masked where it is PII) and ``detail``.
    """
    if errors.is_empty():
        return errors.with_columns(
            message_zh=pl.lit(None, pl.String), message_en=pl.lit(None, pl.String)
        )
    fields = {
        "file": pl.lit(file),
        "row": pl.col("row"),
        "column": pl.col("label"),
        "value": pl.col("value"),
        "detail": pl.col("detail"),
    }
    out = []
    for lang in (0, 1):
        message = pl.lit(None, pl.String)
        for code in errors["code"].unique().sort():
            template = _ROW_PREFIX[lang] + ROW_MESSAGES[code][lang]
            message = pl.when(pl.col("code") == code).then(_formatted(template, fields)).otherwise(
                message
            )
        out.append(message.alias(("message_zh", "message_en")[lang]))
    return errors.with_columns(out)
