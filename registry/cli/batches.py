"""`registry batches`: the batches the quality gate held, and releasing them."""

from __future__ import annotations

import getpass
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from registry.cli.common import configured_storage

if TYPE_CHECKING:
    from registry.storage import Storage

app = typer.Typer(help="Batches the quality gate held, and releasing them.",
                  no_args_is_help=True)


@app.command("list")
def batches_list(
    every: Annotated[bool, typer.Option("--all", help="Every batch, not only held ones.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the batches the quality gate held and nobody released yet, with the reasons.

    With --all: every committed batch."""
    from registry.quality import batch_listings

    listed = batch_listings(configured_storage(), held_only=not every)
    if as_json:
        typer.echo(json.dumps([asdict(b) for b in listed], ensure_ascii=False, indent=2))
        return
    if not listed:
        typer.echo("no held batches" if not every else "no batches")
        return
    table = Table("batch", "region", "dataset", "mode", "rows", "status", "reasons")
    for b in listed:
        table.add_row(b.batch_id, b.region, b.dataset, b.mode, str(b.accepted), b.status,
                      "\n".join(b.reasons_en) or "-")
    Console().print(table)


@app.command("release")
def batches_release(
    batch_id: Annotated[str, typer.Argument(help="A held batch's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it may be published.")],
    by: Annotated[
        str | None, typer.Option("--by", help="Who releases it (default: the OS user).")
    ] = None,
    withdraws: Annotated[
        int | None, typer.Option(
            "--withdraws", help="For a complete list that leaves filings out: how many it "
            "withdraws, to confirm it.")
    ] = None,
) -> None:
    """Release a held batch: it counts in the next publication. Records who, when and why.

    A complete list (replace mode) withdraws the filings it leaves out: such a release is
    refused, naming them, unless --withdraws gives their number.

    Tells the Prefect server at PREFECT_API_URL, if set, with a registry.batches.staged event:
    the publish deployment's trigger then publishes within minutes."""
    from registry.orchestration import batch_released_event, emit_events
    from registry.quality import ReleaseRefused, release_batch

    who = by or _os_user()
    storage = configured_storage()
    withdrawn = _withdrawn(storage, batch_id)
    if withdrawn and withdraws != len(withdrawn):
        shown = ", ".join(withdrawn[:10]) + (" …" if len(withdrawn) > 10 else "")
        typer.echo(
            f"release refused: batch {batch_id} is a complete list; releasing it withdraws "
            f"{len(withdrawn)} filing(s) now in effect ({shown}). If that is meant, run it "
            f"again with --withdraws {len(withdrawn)}.", err=True)
        raise typer.Exit(1)
    try:
        doc = release_batch(storage, batch_id, reason=reason, by=who)
    except ReleaseRefused as err:
        typer.echo(f"release refused: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"released {doc['region']} {doc['dataset']} batch {batch_id} by "
               f"{doc['released_by']} at {doc['released_at']}: {doc['reason']}")
    emit_events([batch_released_event(doc)])


def _withdrawn(storage: Storage, batch_id: str) -> list[str]:
    """What releasing the held batch ``batch_id`` would withdraw (nothing for an unknown id,
    one that is not held, or an upsert batch: release_batch refuses or allows those)."""
    from registry import ledger
    from registry.config.contracts import load_contracts, natural_keys
    from registry.config.settings import load_settings
    from registry.publish.inputs import withdrawn_by_release

    matches = ledger.find_batch(storage, batch_id)
    if len(matches) != 1 or matches[0].status != "held" or matches[0].mode != "replace":
        return []
    keys = natural_keys(load_contracts(load_settings().schemas_dir))
    return withdrawn_by_release(storage, matches[0], keys)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return ""
