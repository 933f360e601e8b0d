"""The commands that run the Prefect flows: `registry ingest`, `publish`, `run` and `demo`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from registry.cli.common import configured_storage, flow_progress

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flows.summary import HeldBatch
    from registry.ingest.pipeline import IngestSummary
    from registry.publish import PublishResult

# Upload outcomes (IngestSummary.by_region): "staged" is staged and publishable, "held" staged
# but held by the quality gate.
_UPLOAD_OUTCOMES = ("staged", "held", "rejected", "duplicate", "in_progress", "skipped")


def ingest(
    region: Annotated[str | None, typer.Option("--region", help="Only this region.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only this dataset.")] = None,
) -> None:
    """Run the ingest flow over every pending upload and print a summary per region, then
    every batch the quality gate held and nobody released yet, with the reasons."""
    # The flows are imported within the block, while Prefect's temporary server starts.
    with flow_progress() as progress:
        from flows.ingest import ingest_flow
        from flows.summary import held_batches

        summary = ingest_flow(region=region, dataset=dataset, progress=progress)
    _print_ingest_summary(summary, held_batches(configured_storage()))


def publish(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Score as of this date (default: today).")
    ] = None,
    full: Annotated[
        bool, typer.Option("--full", help="Rebuild the current state from every staged batch "
                           "first, instead of bringing it forward (same data files).")
    ] = False,
) -> None:
    """Run the publish flow: build the registry and publish a new snapshot."""
    day = _date_option(as_of)  # a usage error is told before Prefect starts
    with _refusal_exits(), flow_progress() as progress:
        from flows.publish import publish_flow

        result = publish_flow(as_of=day, progress=progress, full=full)
    _print_publish_result(result)


def run(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Score as of this date (default: today).")
    ] = None,
) -> None:
    """Ingest every pending upload, then publish. Prints the ingest summary, the held batches
    and the published snapshot."""
    # The publish subflow's exception reaches here as itself (Prefect re-raises it from the
    # pipeline flow): a refusal is a verdict on the data, told like `registry publish` does.
    day = _date_option(as_of)  # a usage error is told before Prefect starts
    with _refusal_exits(), flow_progress() as progress:
        from flows.pipeline import pipeline_flow
        from flows.summary import held_batches

        outcome = pipeline_flow(as_of=day, progress=progress)
    _print_ingest_summary(outcome["ingest"], held_batches(configured_storage()))
    _print_publish_result(outcome["publish"])


def demo(
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same day: same files.")] = (
        20241130
    ),
) -> None:
    """Sample uploads for every region, ingested and published through the Prefect flows.

    The uploads (CSV in UTF-8 and GB18030, XLSX; about 3% bad rows) go into landing/ of
    REGISTRY_STORAGE_URI, then `registry run` takes them. Running it again with the same seed
    on the same day sends the same bytes: a file equal to its region's latest batch is a
    duplicate, files sent in parts restate the same rows; another seed sends new content."""
    from flows.pipeline import pipeline_flow
    from registry.config.settings import load_settings
    from registry.demo import demo_summary, rejection_codes, upload_demo_samples
    from registry.ingest.pipeline import council_time
    from registry.storage import open_storage
    from registry.storage.layout import LANDING_PREFIX, snapshot_prefix

    settings = load_settings()
    storage = open_storage(settings)
    today = council_time(datetime.now(UTC)).date()
    console = _wide_console()
    uploads = upload_demo_samples(storage, settings, seed=seed, today=today)
    formats = sorted({u.sample.format for u in uploads})
    console.print(
        f"{len(uploads)} sample uploads (seed {seed}; {', '.join(formats)}; "
        f"{sum(u.sample.rows for u in uploads):,} rows, "
        f"{sum(u.sample.rejected for u in uploads):,} of them bad) put into "
        f"{storage.uri_for(LANDING_PREFIX)}"
    )
    with flow_progress() as progress:
        outcome = pipeline_flow(as_of=today, progress=progress)
    ingested, result = outcome["ingest"], outcome["publish"]

    table = Table("region", "files", "staged", "held", "duplicate", "refused", "rows in",
                  "accepted", "rejected", "rejected %", "planted",
                  title="this demo's uploads (planted: bad rows the generator wrote; the "
                  "rejected rows should equal them)")
    for region, s in demo_summary(uploads, ingested).items():
        share = f"{100 * s.quarantined / s.rows_in:.1f}" if s.rows_in else "-"
        table.add_row(region, *(str(v) for v in (
            s.uploads, s.staged, s.held, s.duplicate, s.rejected_files, s.rows_in, s.accepted,
            s.quarantined)), share, str(s.planted_bad))
    console.print(table)
    codes = rejection_codes(storage, ingested)
    if codes:
        console.print("rejections by code: " + ", ".join(
            f"{code} {n}" for code, n in codes.most_common()))
    if not result.changes:
        console.print("nothing changed: these bytes were uploaded before (same seed, same day). "
                      "A file equal to its region's latest batch of the dataset is a duplicate; "
                      "an earlier part sent again is staged again and restates the same rows. "
                      "`registry demo --seed N` sends new content.")
    _print_publish_result(result)
    console.print(f"snapshot: {storage.uri_for(snapshot_prefix(result.snapshot_id))}")
    if result.report:
        console.print(f"report:   {storage.uri_for(result.report)}")


def _date_option(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-11-30") from None


@contextlib.contextmanager
def _refusal_exits() -> Iterator[None]:
    """A refused publication is a verdict on the data: say why, exit 1, no traceback."""
    from registry.publish import PublishRefused

    try:
        yield
    except PublishRefused as err:
        typer.echo(f"publication refused: {err}", err=True)
        raise typer.Exit(1) from None


def _wide_console() -> Console:
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 110)  # a log file has room for the whole table
    return console


def _print_ingest_summary(summary: IngestSummary, held: Sequence[HeldBatch]) -> None:
    console = _wide_console()
    table = Table("region", "uploads", "staged", "held", "rejected", "duplicate", "in progress",
                  "rows in", "accepted", "quarantined", title="ingest")
    for code, totals in sorted(summary.by_region().items()):
        uploads = sum(totals.get(s, 0) for s in _UPLOAD_OUTCOMES)
        table.add_row(code, str(uploads), *(str(totals.get(k, 0)) for k in (
            "staged", "held", "rejected", "duplicate", "in_progress", "rows_in", "accepted",
            "quarantined")))
    console.print(table)
    if not held:
        console.print("held batches: none")
        return
    listed = Table("batch", "region", "dataset", "reasons",
                   title=f"{len(held)} held batch(es), not published until released "
                         "(registry batches list / release)")
    for batch in held:
        listed.add_row(batch.batch_id, batch.region, batch.dataset,
                       ", ".join(batch.reasons) or "-")
    console.print(listed)


def _print_publish_result(result: PublishResult) -> None:
    console = Console()
    if not result.published:
        console.print(f"nothing new since snapshot [bold]{result.snapshot_id}[/] (as_of "
                      f"{result.as_of}): not published again / 无新数据，未重新发布")
        return
    console.print(
        f"published snapshot [bold]{result.snapshot_id}[/] (seq {result.seq}, as_of "
        f"{result.as_of}); previous: {result.previous_snapshot or 'none'}"
    )
    table = Table("grade", "trusted merchants", title="trusted by grade")
    for grade_, count in result.trusted_by_grade.items():
        table.add_row(grade_, str(count))
    console.print(table)
    console.print(
        "rows: " + ", ".join(f"{name} {count}" for name, count in result.rows.items())
        + " · changes: "
        + (", ".join(f"{kind} {count}" for kind, count in result.changes.items()) or "none")
    )
    console.print(f"manifest: {result.manifest_key}")
    if result.report:
        console.print(f"report: {result.report}")
    else:
        console.print(f"[bold red]report NOT written[/] (see the log); rebuild it with "
                      f"`registry report {result.snapshot_id}`")
