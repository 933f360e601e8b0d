"""Council files: `registry check` (pre-flight, no storage) and `registry upload`.

What a clerk reads is printed whole: every file problem, every row error's Chinese and English
message, wrapped at the terminal's width and never cropped; plain text, without colour, when
the output is not a terminal (piped, or saved to a file)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

# Row errors shown as text; --json lists them all.
_SHOWN_ROW_ERRORS = 100


def _checked(file: Path, region: str, dataset: str) -> Any:
    from registry.config.settings import load_settings
    from registry.ingest.pipeline import checked_file

    try:
        return checked_file(load_settings(), file, region=region, dataset=dataset)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _exit_code(doc: dict[str, Any]) -> int:
    """DESIGN §8: 2 the file is refused, 1 some rows are rejected, 0 all rows accepted."""
    return 2 if doc["file_errors"] else (1 if doc["rejected"] else 0)


def check(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    region: Annotated[str, typer.Option("--region", help="Uploading council: SH, JS, ...")],
    dataset: Annotated[str, typer.Option("--dataset", help="merchants, complaints, ...")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Pre-flight check of an upload, without storage: every problem of the file at once, each
    row's errors, and warnings for the batch-gate rules the file will trip.

    Exit 0: all rows accepted; 1: some rows rejected; 2: the file is rejected. Warnings do not
    change the exit code."""
    from registry.ingest.validation import checked_file_as_json

    doc = checked_file_as_json(_checked(file, region, dataset))
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        print_check(doc, Console(highlight=False))
    raise typer.Exit(_exit_code(doc))


def _lines(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The check document as (style, text) lines, in the order a clerk reads them."""
    lines: list[tuple[str, str]] = []
    for error in doc["file_errors"]:
        lines += [("bold red", error["code"]), ("", f"  {error['message_zh']}"),
                  ("", f"  {error['message_en']}")]
    if not doc["file_errors"]:
        read_as = ", ".join(str(v) for v in (doc["format"], doc["encoding"]) if v)
        if doc["sheet"]:
            read_as += f", 工作表 sheet「{doc['sheet']}」"
        lines.append(("bold", f"{doc['file']}: {doc['rows']} rows, {doc['accepted']} accepted, "
                              f"{doc['rejected']} rejected ({read_as})"))
    for error in doc["row_errors"][:_SHOWN_ROW_ERRORS]:
        lines += [("red", f"row {error['row']} · {error['column']} · {error['code']}"),
                  ("", f"  {error['message_zh']}"), ("", f"  {error['message_en']}")]
    if len(doc["row_errors"]) > _SHOWN_ROW_ERRORS:
        more = len(doc["row_errors"]) - _SHOWN_ROW_ERRORS
        lines.append(("", f"... 另有 {more} 条，请用 --json 查看全部 / {more} more (use --json "
                          "for all)"))
    for key, label in (("merged_cells", "合并单元格 merged cells"),
                       ("ditto_cells", "同上 same as above")):
        for cells in doc.get(key, []):
            lines += [("", f"{label} · {cells['column']}"),
                      ("", f"  {cells['message_zh']}"), ("", f"  {cells['message_en']}")]
    for warning in doc.get("warnings", []):
        lines += [("yellow", f"警告 warning · {warning['code']} · {warning['column'] or ''}"),
                  ("", f"  {warning['message_zh']}"), ("", f"  {warning['message_en']}")]
    return lines


def print_check(doc: dict[str, Any], console: Console) -> None:
    """Print a ``registry check`` document for people. On a terminal, lines are wrapped at its
    width (never cropped) and coloured; elsewhere they are printed as they are, in plain text."""
    for style, text in _lines(doc):
        if console.is_terminal:
            # Text, not markup: a file name or a value may hold [brackets].
            console.print(Text(text, style=style), overflow="fold", crop=False)
        else:
            typer.echo(text)


def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    region: Annotated[str, typer.Option("--region")],
    dataset: Annotated[str, typer.Option("--dataset")],
    force: Annotated[bool, typer.Option(
        "--force", help="Upload even a file that the check refuses (it gets a receipt that "
                        "says why).")] = False,
) -> None:
    """Check a file as `registry check` does, then put it into landing/{region}/{dataset}/ for
    the next ingest, and say where its receipt will appear.

    A file the check refuses whole (empty, unreadable, wrong columns...) is not uploaded
    (exit 2) unless --force. Tells the Prefect server at PREFECT_API_URL, if set, with a
    registry.upload.created event."""
    from registry.config.settings import load_settings
    from registry.ingest.pipeline import upload_file
    from registry.ingest.validation import checked_file_as_json
    from registry.orchestration import emit_upload_created
    from registry.storage import open_storage

    doc = checked_file_as_json(_checked(file, region, dataset))
    console = Console(highlight=False)
    if doc["file_errors"]:
        print_check(doc, console)
        if not force:
            typer.echo("未上传：请修改后重新检查；确需上传请加 --force。\n"
                       "Not uploaded: fix the file and check it again, or add --force to "
                       "upload it all the same.")
            raise typer.Exit(2)
    settings = load_settings()
    try:
        landed = upload_file(open_storage(settings), settings, file, region=region,
                             dataset=dataset)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(landed.key)
    typer.echo(f"回执 receipt (after the next ingest): {landed.receipt_key}")
    emit_upload_created(landed.key, region, dataset, file.stat().st_size)
