"""The `registry` command line (docs/architecture.md §13). Commands are thin: they parse options,
call one library function or flow, and print its result for people (or as JSON with --json).

One module per command group: `files` (check, upload), `runs` (the Prefect flows: ingest,
publish, run, demo), `snapshots` (listing, show, lookup, diff, verify, rollback, gc, report),
`batches` (held batches, release) and `orchestration` (Prefect server set-up); `common` holds
what several groups share. This module builds the `registry` app from them, in the order
`registry --help` lists the commands.

Commands import the registry's packages, the flows and polars inside their bodies: those pull in
Prefect, Great Expectations, polars, boto3 or pydantic settings, and importing them only when a
command runs keeps `registry --help` and the light commands quick to start.
"""

from __future__ import annotations

import os

import typer

from registry.cli import batches, files, orchestration, runs, snapshots

# Without PREFECT_API_URL, flows run on Prefect's temporary local server, which the first run
# must create a database for. A first flow run there took 21 s on an idle two-core machine,
# most of it that database, and longer under load; Prefect gives up on the server after 20 s.
# A value the environment sets wins. Prefect reads it when it loads its settings, later.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

__all__ = ["app"]

app = typer.Typer(
    name="registry",
    help="Yangtze River Delta imported-goods assurance registry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Docstrings are wrapped at 100 columns: let the terminal wrap them instead.
    rich_markup_mode="markdown",
)

for _command in (
    files.check, files.upload,
    runs.ingest, runs.publish, runs.run, runs.demo,
    snapshots.snapshots, snapshots.show, snapshots.lookup, snapshots.diff, snapshots.verify,
    snapshots.rollback, snapshots.gc, snapshots.report,
):
    app.command()(_command)
app.add_typer(batches.app, name="batches")
app.add_typer(orchestration.app, name="orchestration")
