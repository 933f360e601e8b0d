"""The `registry` command line (DESIGN.md §8). Commands are thin: they parse options, call one
library function, and print its result for people (or as JSON with --json)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

# Without PREFECT_API_URL, flows run on Prefect's temporary local server, which the first run
# must create a database for. A first flow run there took 21 s on an idle two-core machine,
# most of it that database, and longer under load; Prefect gives up on the server after 20 s.
# A value the environment sets wins. Prefect reads it when it loads its settings, later.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

if TYPE_CHECKING:
    from collections.abc import Sequence
    from contextlib import AbstractContextManager

    from registry.ingest.pipeline import IngestSummary
    from registry.progress import ProgressCallback
    from registry.publish import PublishResult
    from registry.report.run_summary import HeldBatch
    from registry.snapshot.reader import Snapshot
    from registry.storage import Storage

app = typer.Typer(
    name="registry",
    help="Yangtze River Delta imported-goods assurance registry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Docstrings are wrapped at 100 columns: let the terminal wrap them instead.
    rich_markup_mode="markdown",
)


def _progress() -> AbstractContextManager[ProgressCallback]:
    """Progress on stderr: a bar on a terminal, plain lines in a pipe or in CI."""
    import sys

    from registry.config.settings import load_settings
    from registry.progress import cli_progress

    return cli_progress(load_settings(), sys.stderr)


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


@app.command()
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


@app.command()
def ingest(
    region: Annotated[str | None, typer.Option("--region", help="Only this region.")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Only this dataset.")] = None,
) -> None:
    """Run the ingest flow over every pending upload and print a summary per region, then
    every batch the quality gate held and nobody released yet, with the reasons."""
    from flows.ingest import ingest_flow
    from registry.report.run_summary import held_batches

    with _progress() as progress:
        summary = ingest_flow(region=region, dataset=dataset, progress=progress)
    _print_ingest_summary(summary, held_batches(_storage()))


# Upload outcomes (IngestSummary.by_region): "staged" is staged and publishable, "held" staged
# but held by the quality gate.
_UPLOAD_OUTCOMES = ("staged", "held", "rejected", "duplicate", "in_progress", "skipped")


def _print_ingest_summary(summary: IngestSummary, held: Sequence[HeldBatch]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 110)  # a log file has room for the whole table
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


# -- publication and snapshots -----------------------------------------------------------------


def _date_option(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-11-30") from None


def _print_publish_result(result: PublishResult) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
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


def _snapshot_or_exit(storage: Storage, snapshot_id: str | None) -> Snapshot:
    from registry.snapshot.reader import SnapshotError, open_snapshot

    try:
        return open_snapshot(storage, snapshot_id)
    except SnapshotError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def _storage() -> Storage:
    from registry.config.settings import load_settings
    from registry.storage import open_storage

    return open_storage(load_settings())


@contextlib.contextmanager
def _refusal_exits() -> Iterator[None]:
    """A refused publication is a verdict on the data: say why, exit 1, no traceback."""
    from registry.publish import PublishRefused

    try:
        yield
    except PublishRefused as err:
        typer.echo(f"publication refused: {err}", err=True)
        raise typer.Exit(1) from None


@app.command()
def publish(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Score as of this date (default: today).")
    ] = None,
) -> None:
    """Run the publish flow: build the registry and publish a new snapshot."""
    from flows.publish import publish_flow

    with _refusal_exits(), _progress() as progress:
        result = publish_flow(as_of=_date_option(as_of), progress=progress)
    _print_publish_result(result)


@app.command()
def run(
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Score as of this date (default: today).")
    ] = None,
) -> None:
    """Ingest every pending upload, then publish. Prints the ingest summary, the held batches
    and the published snapshot."""
    from flows.pipeline import pipeline_flow
    from registry.report.run_summary import held_batches

    # The publish subflow's exception reaches here as itself (Prefect re-raises it from the
    # pipeline flow): a refusal is a verdict on the data, told like `registry publish` does.
    with _refusal_exits(), _progress() as progress:
        outcome = pipeline_flow(as_of=_date_option(as_of), progress=progress)
    _print_ingest_summary(outcome["ingest"], held_batches(_storage()))
    _print_publish_result(outcome["publish"])


@app.command()
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
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from flows.pipeline import pipeline_flow
    from registry.config.settings import load_settings
    from registry.demo import demo_summary, rejection_codes, upload_demo_samples
    from registry.ingest.pipeline import council_time
    from registry.storage import open_storage
    from registry.storage.layout import snapshot_prefix

    settings = load_settings()
    storage = open_storage(settings)
    today = council_time(datetime.now(UTC)).date()
    console = Console()
    if not console.is_terminal:
        console.width = max(console.width, 110)  # a log file has room for the whole table
    uploads = upload_demo_samples(storage, settings, seed=seed, today=today)
    formats = sorted({u.sample.format for u in uploads})
    console.print(
        f"{len(uploads)} sample uploads (seed {seed}; {', '.join(formats)}; "
        f"{sum(u.sample.rows for u in uploads):,} rows, "
        f"{sum(u.sample.rejected for u in uploads):,} of them bad) put into "
        f"{storage.uri_for('landing/')}"
    )
    with _progress() as progress:
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


@app.command()
def snapshots(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List committed snapshots, oldest first."""
    import json
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from registry.snapshot.reader import list_snapshots

    listed = list_snapshots(_storage())
    if as_json:
        typer.echo(json.dumps([asdict(s) for s in listed], default=str, indent=2))
        return
    table = Table("seq", "snapshot", "as_of", "committed", "state")
    for s in listed:
        state = "latest" if s.is_latest else ("withdrawn" if s.withdrawn else "")
        if not s.present:
            state = "removed by gc"
        committed = f"{s.committed_at:%Y-%m-%d %H:%M:%S}"
        table.add_row(str(s.seq), s.snapshot_id, str(s.as_of), committed, state)
    Console().print(table)


def _merchant_explained(row: dict) -> list[str]:
    lines = [
        f"{row['uscc']}  {row['name']}" + ("  (name conflict: " + " / ".join(
            row["name_variants"]) + ")" if row["name_conflict"] else ""),
        f"regions {', '.join(row['regions'])} · registered in {row['registered_region'] or '-'}"
        f" · programs {', '.join(row['programs'])} · valid until {row['valid_until']}",
        f"score {row['score']} = compliance {row['score_compliance']} + complaints "
        f"{row['score_complaints']} + quality {row['score_quality']}",
        f"  complaints in 12 months: {row['complaints_12m']} ({row['unresolved_12m']} unresolved)"
        f" · inspections: {row['inspections_12m']} ({row['failed_inspections_12m']} failed)"
        f" · gift score: {row['gift_score'] if row['gift_score'] is not None else '-'}",
        f"grade {row['grade'] or '-'} · trusted: {'yes' if row['trusted'] else 'no'}"
        + (f" · disqualified: {', '.join(row['disqualifications'])}"
           if row["disqualifications"] else ""),
        f"first listed {row['first_listed_on']} · last changed {row['last_changed_on']}",
    ]
    return lines


@app.command()
def show(
    snapshot: Annotated[str | None, typer.Option("--snapshot", help="Snapshot id.")] = None,
    uscc: Annotated[str | None, typer.Option("--uscc", help="One merchant's entry.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show a snapshot (latest by default), or one merchant with its score explained."""
    import json

    import polars as pl

    storage = _storage()
    snap = _snapshot_or_exit(storage, snapshot)
    if uscc is None:
        doc = snap.manifest.model_dump(mode="json")
        if as_json:
            typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
            return
        typer.echo(f"snapshot {snap.snapshot_id} · as_of {snap.as_of} · previous "
                   f"{snap.manifest.previous_snapshot or 'none'}")
        for name, counts in snap.manifest.summary.items():
            typer.echo(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return
    wanted = snap.merchants.filter(pl.col("uscc") == uscc.strip().upper())
    rows = storage.retried_read(snap.key("merchants"), wanted.collect).to_dicts()
    if not rows:
        typer.echo(f"{uscc} is not listed in snapshot {snap.snapshot_id}", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(rows[0], ensure_ascii=False, default=str, indent=2))
        return
    typer.echo("\n".join(_merchant_explained(rows[0])))


@app.command()
def diff(
    a: Annotated[str, typer.Argument(help="The earlier snapshot id.")],
    b: Annotated[str, typer.Argument(help="The later snapshot id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print every change as JSON.")] = False,
) -> None:
    """Merchants added, removed and updated from snapshot A to snapshot B."""
    import json

    from rich.console import Console
    from rich.table import Table

    from registry.build.changes import merchant_changes

    storage = _storage()
    before, after = (
        storage.retried_read(snap.key("merchants"), snap.merchants.collect)
        for snap in (_snapshot_or_exit(storage, a), _snapshot_or_exit(storage, b))
    )
    changes = merchant_changes(before, after)
    if as_json:
        typer.echo(json.dumps(changes.to_dicts(), ensure_ascii=False, default=str, indent=2))
        return
    counts = changes.get_column("change").value_counts(sort=True).rows()
    typer.echo(f"{a} -> {b}: " + (", ".join(f"{k} {n}" for k, n in counts) or "no changes"))
    table = Table("uscc", "change", "fields", "grade", "score", "trusted")
    for row in changes.head(50).to_dicts():
        table.add_row(
            row["uscc"], row["change"], ", ".join(row["fields_changed"]),
            f"{row['grade_before'] or '-'} -> {row['grade_after'] or '-'}",
            f"{row['score_before']} -> {row['score_after']}",
            f"{row['trusted_before']} -> {row['trusted_after']}",
        )
    Console().print(table)
    if changes.height > 50:
        typer.echo(f"... {changes.height - 50} more (use --json for all)")


@app.command()
def verify(
    snapshot_id: Annotated[str | None, typer.Argument(help="Default: latest.")] = None,
) -> None:
    """Check a snapshot's manifest and every file's size, sha256 and rows.

    Exit 1 on any mismatch."""
    from registry.snapshot.reader import verify_snapshot

    problems = verify_snapshot(_storage(), snapshot_id)
    for problem in problems:
        typer.echo(f"MISMATCH {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{snapshot_id or 'latest'}: OK")


@app.command()
def rollback(
    snapshot_id: Annotated[str, typer.Argument(help="An earlier committed snapshot.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded in the log.")] = None,
) -> None:
    """Point latest back at an earlier snapshot, as a new commit-log entry."""
    from registry.publish import ConcurrentPublish, rollback_snapshot

    try:
        entry = rollback_snapshot(_storage(), snapshot_id, reason=reason)
    except (ValueError, ConcurrentPublish) as err:
        typer.echo(f"rollback refused: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"latest is now {entry.snapshot_id} (log seq {entry.seq}; was "
               f"{entry.previous_snapshot})")


@app.command()
def gc(
    grace: Annotated[
        float, typer.Option("--grace", help="Leave uncommitted folders younger than this (s).")
    ] = 3600,
) -> None:
    """Remove what no commit needs: stale uncommitted files and snapshots past retention.

    That is: uncommitted snapshot folders older than the grace period; snapshots beyond the
    retention count, with their reports; and batches crashed ingest workers staged but never
    committed. Never removes latest or its predecessor, nor a batch still claimed."""
    from registry.config.settings import load_settings
    from registry.publish import collect_garbage
    from registry.storage import open_storage

    settings = load_settings()
    report = collect_garbage(open_storage(settings), settings, grace_seconds=grace)
    typer.echo(
        f"removed {len(report.orphans_removed)} uncommitted and {len(report.expired_removed)} "
        f"expired snapshot(s), {report.objects_deleted} object(s); kept {len(report.kept)}"
    )
    for snapshot_id in report.orphans_removed:
        typer.echo(f"  uncommitted: {snapshot_id}")
    for snapshot_id in report.expired_removed:
        typer.echo(f"  expired: {snapshot_id}")
    if report.batches_removed:
        typer.echo(f"removed {len(report.batches_removed)} uncommitted ingest batch(es)")
    for batch_id in report.batches_removed:
        typer.echo(f"  uncommitted batch: {batch_id}")


# -- held batches ------------------------------------------------------------------------------

batches = typer.Typer(help="Batches the quality gate held, and releasing them.",
                      no_args_is_help=True)
app.add_typer(batches, name="batches")


@batches.command("list")
def batches_list(
    every: Annotated[bool, typer.Option("--all", help="Every batch, not only held ones.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the batches the quality gate held and nobody released yet, with the reasons.

    With --all: every committed batch."""
    import json
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    from registry.quality import batch_listings

    listed = batch_listings(_storage(), held_only=not every)
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


def _os_user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return ""


@batches.command("release")
def batches_release(
    batch_id: Annotated[str, typer.Argument(help="A held batch's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why it may be published.")],
    by: Annotated[
        str | None, typer.Option("--by", help="Who releases it (default: the OS user).")
    ] = None,
) -> None:
    """Release a held batch: it counts in the next publication. Records who, when and why."""
    from registry.quality import ReleaseRefused, release_batch

    who = by or _os_user()
    try:
        doc = release_batch(_storage(), batch_id, reason=reason, by=who)
    except ReleaseRefused as err:
        typer.echo(f"release refused: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"released {doc['region']} {doc['dataset']} batch {batch_id} by "
               f"{doc['released_by']} at {doc['released_at']}: {doc['reason']}")


# -- orchestration -----------------------------------------------------------------------------

orchestration = typer.Typer(help="Prefect server set-up for the registry's deployments.",
                            no_args_is_help=True)
app.add_typer(orchestration, name="orchestration")


@orchestration.command("setup")
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


# -- reports -----------------------------------------------------------------------------------


@app.command()
def report(
    snapshot_id: Annotated[str | None, typer.Argument(help="Default: latest.")] = None,
) -> None:
    """Rebuild a snapshot's HTML report (latest by default) and print where it is.

    Publication writes reports/{ID}/index.html; this rebuilds it, for example after Data
    Docs were added or after a publication whose report failed."""
    from registry.config.settings import load_settings
    from registry.report import write_report
    from registry.snapshot.reader import SnapshotError
    from registry.storage import open_storage

    settings = load_settings()
    storage = open_storage(settings)
    try:
        with _progress() as progress:
            key = write_report(storage, settings, snapshot_id, progress=progress)
    except SnapshotError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(storage.uri_for(key))


if __name__ == "__main__":
    app()
