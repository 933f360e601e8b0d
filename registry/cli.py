"""The `registry` command line (DESIGN.md §8). Commands are thin: they parse options, call one
library function, and print its result for people (or as JSON with --json)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="registry",
    help="Yangtze River Delta imported-goods assurance registry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# -- ingestion ---------------------------------------------------------------------------------


@app.command()
def check(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    region: Annotated[str, typer.Option("--region", help="Uploading council: SH, JS, ...")],
    dataset: Annotated[str, typer.Option("--dataset", help="merchants, complaints, ...")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Pre-flight check of an upload, without storage.

    Exit 0: all rows accepted; 1: some rows rejected; 2: the file is rejected."""
    import json

    from rich.console import Console
    from rich.table import Table

    from registry.ingest import checked_file
    from registry.settings import load_settings
    from registry.validation import checked_file_as_json

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


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    region: Annotated[str, typer.Option("--region")],
    dataset: Annotated[str, typer.Option("--dataset")],
) -> None:
    """Put a file into landing/{region}/{dataset}/ for the next ingest."""
    from registry.ingest import upload_file
    from registry.settings import load_settings
    from registry.storage import open_storage

    settings = load_settings()
    try:
        key = upload_file(open_storage(settings), settings, file, region=region, dataset=dataset)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(key)


@app.command()
def ingest(
    region: Annotated[str | None, typer.Option("--region", help="Only this region.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only this dataset.")] = None,
) -> None:
    """Run the ingest flow over every pending upload and print a summary per region."""
    from flows.ingest import ingest_flow
    from rich.console import Console
    from rich.table import Table

    summary = ingest_flow(region=region, dataset=dataset)
    table = Table("region", "uploads", "staged", "rejected", "duplicate", "in progress",
                  "rows in", "accepted", "quarantined", title="ingest")
    for code, totals in sorted(summary["by_region"].items()):
        uploads = sum(totals.get(s, 0) for s in
                      ("staged", "rejected", "duplicate", "in_progress", "skipped"))
        table.add_row(code, str(uploads), *(str(totals.get(k, 0)) for k in (
            "staged", "rejected", "duplicate", "in_progress", "rows_in", "accepted",
            "quarantined")))
    Console().print(table)


if __name__ == "__main__":
    app()
