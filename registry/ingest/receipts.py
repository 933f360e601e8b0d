"""Receipts: what a council gets back for every upload, as JSON and as a CSV for Excel.

A receipt names the file and says, in Chinese and English, how many rows were accepted and
rejected and why. It never shows PII values (they are hidden in the row errors), and a
duplicate of another council's upload does not reveal that council's file.
"""

from __future__ import annotations

import codecs
from typing import Any

import polars as pl

from registry.ingest import rejections as rj
from registry.ingest.tables import filled_cells_as_dicts
from registry.ingest.validation import UploadCheck

RECEIPT_VERSION = 1
# A file with every row broken would otherwise produce a receipt as large as the file; the
# counts per code stay complete.
MAX_RECEIPT_ROW_ERRORS = 10_000
# Excel runs a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = r"^[=+\-@\t\r]"
_CSV_COLUMNS = ["行号 row", "列 column", "代码 code", "值 value", "说明", "message"]


def _summary(status: str, rows: int, accepted: int, rejected: int) -> tuple[str, str]:
    if status == "rejected":
        return "整个文件未被接收，请按下列原因修改后重新上传。", (
            "The whole file was refused; fix the reasons below and upload it again."
        )
    if status == "duplicate":
        return "该文件与本地区该数据集最近一次提交的批次内容完全相同，登记册不会因此变化。", (
            "This file is identical to your latest batch of this dataset; the registry does "
            "not change."
        )
    return (
        f"共 {rows} 行：接收 {accepted} 行，拒收 {rejected} 行。",
        f"{rows} rows: {accepted} accepted, {rejected} rejected.",
    )


def receipt_document(
    *,
    upload_id: str,
    region: str,
    dataset: str,
    file: str,
    source_key: str,
    received_at: str,
    sha256: str | None,
    check: UploadCheck | None = None,
    file_error: rj.FileRejected | None = None,
    batch_id: str | None = None,
    mode: str | None = None,
    duplicate_of: dict[str, Any] | None = None,
    held: dict[str, Any] | None = None,
    kept_previous: list[str] | None = None,
    kept_previous_merchants: list[str] | None = None,
) -> dict[str, Any]:
    """The receipt for one upload.

    ``check`` is the validation outcome when the file was read; ``file_error`` a refusal
    decided before reading (too large, unknown dataset); ``duplicate_of`` describes the earlier
    upload with the same bytes (already stripped of anything from another council); ``held``
    says that the batch gate held the batch, and why (``batch_status``, ``held_zh``,
    ``held_en``, ``held_reasons``; see :func:`registry.quality.held_receipt_fields`).
    ``kept_previous`` names the filings of a complete list (replace mode) whose rows were
    rejected: each keeps its previous accepted row until the council corrects it;
    ``kept_previous_merchants`` the merchants (credit codes) of such rows that named no filing
    (a filing-id cell left empty): each keeps its previous rows."""
    errors_of_file = ((file_error,) if file_error is not None
                      else check.file_errors if check is not None else ())
    error = errors_of_file[0] if errors_of_file else None
    if duplicate_of is not None:
        status = "duplicate"
    elif error is not None:
        status = "rejected"
    elif check is not None and check.rejected:
        status = "partially_accepted"
    else:
        status = "accepted"
    rows = check.rows_in if check and not error else 0
    accepted = check.accepted.height if check and not error else 0
    rejected = check.rejected if check and not error else 0
    errors = check.errors if check is not None and error is None else pl.DataFrame()
    row_errors = (
        errors.head(MAX_RECEIPT_ROW_ERRORS)
        .select("row", "column", "code", "value", "message_zh", "message_en")
        .to_dicts()
        if not errors.is_empty()
        else []
    )
    summary_zh, summary_en = _summary(status, rows, accepted, rejected)
    if held is not None:
        summary_zh, summary_en = f"{summary_zh}{held['held_zh']}", f"{summary_en} {held['held_en']}"
    if kept_previous:
        summary_zh += (f"本次为全量名单：被拒收的 {len(kept_previous)} 条备案保留此前已接收的记录"
                       "（如有），修正后请重新上传；只有从名单中删去的备案才会被撤下。")
        summary_en += (f" This is a complete list: the {len(kept_previous)} filing(s) whose "
                       "rows were rejected keep their previously accepted rows, if any, until "
                       "you upload a corrected list; only a filing left out of the list is "
                       "withdrawn.")
    if kept_previous_merchants:
        summary_zh += (f"被拒收且未填备案编号的行涉及 {len(kept_previous_merchants)} 家商户，"
                       "这些商户保留此前已接收的备案（如有），请补全备案编号后重新上传。")
        summary_en += (f" Rejected rows without a filing ID name {len(kept_previous_merchants)} "
                       "merchant(s): each keeps its previously accepted filings, if any, until "
                       "you upload the list with the filing IDs filled in.")
    return {
        "receipt_version": RECEIPT_VERSION,
        "upload_id": upload_id,
        "region": region,
        "dataset": dataset,
        "file": file,
        "source_key": source_key,
        "sha256": sha256,
        "received_at": received_at,
        "status": status,
        # Which case of exactly-once applied (registry.ingest.pipeline's module docstring).
        "case": ("duplicate" if duplicate_of is not None else "rejected" if error is not None
                 else "new"),
        "summary_zh": summary_zh,
        "summary_en": summary_en,
        "batch_id": batch_id,
        "mode": mode,
        "format": check.format if check else None,
        "encoding": check.encoding if check else None,
        "sheet": check.sheet if check else None,
        "contract_version": check.contract_version if check else None,
        "rows": rows,
        "accepted": accepted,
        "rejected": rejected,
        "file_errors": [e.as_dict(file) for e in errors_of_file],
        "error_counts": (
            dict(errors.group_by("code").len().sort("code").iter_rows())
            if not errors.is_empty() else {}
        ),
        "row_errors": row_errors,
        "row_errors_truncated": len(row_errors) < errors.height,
        "ignored_columns": check.ignored_columns if check else [],
        "skipped_note_rows": [
            {"row": n.row, "starts_with": n.starts_with} for n in (check.notes if check else [])
        ],
        **filled_cells_as_dicts(check.filled if check else []),
        "duplicate_of": duplicate_of,
        "kept_previous": kept_previous or [],
        "kept_previous_merchants": kept_previous_merchants or [],
        "batch_status": held["batch_status"] if held else ("released" if batch_id else None),
        "held_reasons": held["held_reasons"] if held else [],
    }


def _neutralised(cell: pl.Expr) -> pl.Expr:
    text = cell.cast(pl.String).fill_null("")
    return pl.when(text.str.contains(_FORMULA_START)).then("'" + text).otherwise(text)


def receipt_csv(document: dict[str, Any]) -> bytes:
    """The receipt as CSV for Excel: UTF-8 with BOM (so Excel shows Chinese), one line for the
    summary, one per file error and one per row error, every cell formula-safe."""
    summary = {"row": [None], "column": [""], "code": [document["status"].upper()],
               "value": [document["file"]], "message_zh": [document["summary_zh"]],
               "message_en": [document["summary_en"]]}
    schema = dict.fromkeys(summary, pl.String) | {"row": pl.Int64}
    lines = pl.concat([
        pl.DataFrame(summary, schema=schema),
        pl.DataFrame(
            [{"row": None, "column": "", "value": "", **{k: e[k] for k in (
                "code", "message_zh", "message_en")}} for e in document["file_errors"]],
            schema=schema,
        ),
        pl.DataFrame(
            [{"row": None, "column": "", "value": "", **{k: e[k] for k in (
                "code", "message_zh", "message_en")}} for e in document.get("held_reasons", [])],
            schema=schema,
        ),
        pl.DataFrame(document["row_errors"], schema=schema),
    ], how="diagonal")
    table = lines.select(
        _neutralised(pl.col(c)).alias(header)
        for c, header in zip(summary, _CSV_COLUMNS, strict=True)
    )
    return codecs.BOM_UTF8 + table.write_csv(line_terminator="\r\n").encode("utf-8")
