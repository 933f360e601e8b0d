"""`registry orchestration`: the Prefect server set-up for the registry's deployments."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Prefect server set-up for the registry's deployments.",
                  no_args_is_help=True)


@app.command("setup")
def orchestration_setup(
    per_region: Annotated[
        int, typer.Option("--per-region", min=1, help="Ingest tasks at once per council.")
    ] = 2,
) -> None:
    """Create the work pool and concurrency limits on the server at PREFECT_API_URL.

    The pool is registry-pool; the limits are registry-publish (1) and region:{R}
    (--per-region). Safe to run again."""
    from registry.config.regions import load_regions
    from registry.config.settings import load_settings
    from registry.orchestration import set_up_orchestration

    regions = load_regions(load_settings().config_dir).regions
    for line in set_up_orchestration(regions, per_region).lines():
        typer.echo(line)
