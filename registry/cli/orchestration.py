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
    """Create the work pool, concurrency limits and notifications on the server at
    PREFECT_API_URL.

    The pool is registry-pool; the limits are registry-publish (1) and region:{R}
    (--per-region). With REGISTRY_NOTIFY_WEBHOOK_URL set, the Webhook block registry-notify
    calls it, and the automations of automations.yaml send held batches, rejected files and
    published snapshots to it. Safe to run again."""
    from registry.config.regions import load_regions
    from registry.config.settings import load_settings
    from registry.orchestration import set_up_orchestration

    settings = load_settings()
    regions = load_regions(settings.config_dir).regions
    for line in set_up_orchestration(regions, per_region, settings.notify_webhook_url).lines():
        typer.echo(line)
