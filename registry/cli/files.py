"""Council files: `registry check` (pre-flight, no storage) and `registry upload`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table


def check(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    region: Annotated[str, typer.Option("--region", help="Uploading council: SH, JS, ...")],
    dataset: Annotated[str, typer.Option("--dataset", help="merchants, complaints, ...")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Pre-flight check of an upload, without storage.

    Exit 0: all rows accepted; 1: some rows rejected; 2: the file is rejected."""
    from registry.config.settings import load_settings
    from registry.ingest.pipeline import checked_file
    from registry.ingest.validation import checked_file_as_json

    try:
        result = checked_file(load_settings(), file, region=region, dataset=dataset)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    doc = checked_file_as_json(result)
    code = 2 if doc["file_errors"] else (1 if doc["rejected"] else 0)
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        raise typer.Exit(code)
    console = Console()
    for error in doc["file_errors"]:
        console.print(f"[bold red]{error['code']}[/] {error['message_zh']}")
        console.print(f"  {error['message_en']}")
    if not doc["file_errors"]:
        console.print(
            f"{doc['file']}: {doc['rows']} rows, [green]{doc['accepted']} accepted[/], "
            f"[red]{doc['rejected']} rejected[/] ({result.format}"
            f"{', ' + result.encoding if result.encoding else ''})"
        )
    if doc["row_errors"]:
        table = Table("row", "column", "code", "message")
        for error in doc["row_errors"][:100]:
            table.add_row(str(error["row"]), error["column"], error["code"],
                          f"{error['message_zh']}\n{error['message_en']}")
        console.print(table)
        if len(doc["row_errors"]) > 100:
            console.print(f"... {len(doc['row_errors']) - 100} more (use --json for all)")
    raise typer.Exit(code)


def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    region: Annotated[str, typer.Option("--region")],
    dataset: Annotated[str, typer.Option("--dataset")],
) -> None:
    """Put a file into landing/{region}/{dataset}/ for the next ingest.

    Tells the Prefect server at PREFECT_API_URL, if set, with a registry.upload.created
    event."""
    from registry.config.settings import load_settings
    from registry.ingest.pipeline import upload_file
    from registry.orchestration import emit_upload_created
    from registry.storage import open_storage

    settings = load_settings()
    try:
        key = upload_file(open_storage(settings), settings, file, region=region, dataset=dataset)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(key)
    emit_upload_created(key, region, dataset, file.stat().st_size)
