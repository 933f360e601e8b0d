"""The `registry` command line (docs/architecture.md §13). Commands are thin: they parse options,
call one library function or flow, and print its result for people (or as JSON with --json).

One module per command group: `files` (check, upload), `runs` (the Prefect flows: ingest,
publish, run, demo), `snapshots` (listing, show, lookup, diff, verify, rollback, gc, report),
`batches` (held batches, release) and `orchestration` (Prefect server set-up); `common` holds
what several groups share. This module builds the `registry` app from them, in the order
`registry --help` lists the commands, and runs every command the same way: quiet logging unless
`-v` (`quiet`), and a failure told as `errors` says (exit 64 for a usage error, one line for a
configuration, credential or network failure, a JSON document with `--json`).

Commands import the registry's packages, the flows and polars inside their bodies: those pull in
Prefect, Great Expectations, polars, boto3 or pydantic settings, and importing them only when a
command runs keeps `registry --help` and the light commands quick to start.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from registry.cli import batches, files, orchestration, runs, snapshots, templates
from registry.cli.errors import click_exception, echoed_params, failure_of
from registry.cli.quiet import NO_TELEMETRY, command_logging

# Without PREFECT_API_URL, flows run on Prefect's temporary local server, which the first run
# must create a database for. A first flow run there took 21 s on an idle two-core machine,
# most of it that database, and longer under load; Prefect gives up on the server after 20 s.
# A value the environment sets wins. Prefect reads it when it loads its settings, later.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
for _name, _value in NO_TELEMETRY.items():
    os.environ.setdefault(_name, _value)

__all__ = ["app"]


class RegistryGroup(TyperGroup):
    """The `registry` command group: each command runs under :func:`command_logging`, and
    :meth:`main` turns a failure into an exit code and what :mod:`registry.cli.errors` says."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        args = list(sys.argv[1:] if args is None else args)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False,
                                  **extra)
        except Exception as exc:
            code = _told(exc, as_json="--json" in args)
        else:
            # typer.Exit(code) comes back as its code; a command that returns, as None.
            code = result if isinstance(result, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx: typer.Context) -> Any:
        # ctx.params holds the global options here, parsed by the time a command runs; they
        # are gone when the failure reaches main().
        with command_logging(verbose=ctx.params.get("verbose", False)):
            try:
                return super().invoke(ctx)
            except Exception as exc:
                failure = failure_of(exc)
                if ctx.params.get("debug") and failure and failure.code != "USAGE":
                    traceback.print_exc()
                raise


def _told(exc: Exception, *, as_json: bool) -> int:
    """Tell ``exc`` to the person at the terminal; return the exit code. A bug is raised."""
    failure = failure_of(exc)
    if failure is not None:
        if as_json:
            echoed = echoed_params(exc) if failure.code == "USAGE" else {}
            typer.echo(json.dumps(failure.document(echoed), ensure_ascii=False, indent=2))
        typer.echo(failure.line(), err=True)
        return failure.exit_code
    if isinstance(exc, typer.Abort):
        typer.echo("registry: 已中止 / aborted", err=True)
        return 1
    if isinstance(exc, click_exception()):
        exc.show()
        return exc.exit_code
    raise exc


app = typer.Typer(
    name="registry",
    cls=RegistryGroup,
    help="Yangtze River Delta imported-goods assurance registry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Docstrings are wrapped at 100 columns: let the terminal wrap them instead.
    rich_markup_mode="markdown",
)



@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option(
        "--debug", envvar="REGISTRY_DEBUG",
        help="Show the traceback of a configuration, credential or network failure.")] = False,
    verbose: Annotated[bool, typer.Option(
        "-v", "--verbose",
        help="Show the logs of Prefect and Great Expectations, and storage retries.")] = False,
) -> None:
    # Read from the context by RegistryGroup.invoke, which runs the command inside them.
    del debug, verbose


for _command in (
    files.check, files.upload, templates.template, templates.columns,
    runs.ingest, runs.publish, runs.run, runs.demo,
    snapshots.snapshots, snapshots.show, snapshots.lookup, snapshots.diff, snapshots.verify,
    snapshots.rollback, snapshots.gc, snapshots.report,
):
    app.command()(_command)
app.add_typer(batches.app, name="batches")
app.add_typer(orchestration.app, name="orchestration")
