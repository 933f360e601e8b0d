"""Committed snapshots: `registry snapshots`, `show`, `diff`, `verify`, `rollback`, `gc` and
`report` (a snapshot's HTML report)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from registry.cli.common import configured_storage, stderr_progress

if TYPE_CHECKING:
    from registry.snapshot.reader import Snapshot
    from registry.storage import Storage


def snapshots(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List committed snapshots, oldest first."""
    from registry.snapshot.reader import list_snapshots

    listed = list_snapshots(configured_storage())
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


def show(
    snapshot: Annotated[str | None, typer.Option("--snapshot", help="Snapshot id.")] = None,
    uscc: Annotated[str | None, typer.Option("--uscc", help="One merchant's entry.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Show a snapshot (latest by default), or one merchant with its score explained."""
    import polars as pl

    storage = configured_storage()
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


def diff(
    a: Annotated[str, typer.Argument(help="The earlier snapshot id.")],
    b: Annotated[str, typer.Argument(help="The later snapshot id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print every change as JSON.")] = False,
) -> None:
    """Merchants added, removed and updated from snapshot A to snapshot B."""
    from registry.build.changes import merchant_changes

    storage = configured_storage()
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


def verify(
    snapshot_id: Annotated[str | None, typer.Argument(help="Default: latest.")] = None,
) -> None:
    """Check a snapshot's manifest and every file's size, sha256 and rows.

    Exit 1 on any mismatch."""
    from registry.snapshot.reader import verify_snapshot

    problems = verify_snapshot(configured_storage(), snapshot_id)
    for problem in problems:
        typer.echo(f"MISMATCH {problem}", err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{snapshot_id or 'latest'}: OK")


def rollback(
    snapshot_id: Annotated[str, typer.Argument(help="An earlier committed snapshot.")],
    reason: Annotated[str | None, typer.Option("--reason", help="Recorded in the log.")] = None,
) -> None:
    """Point latest back at an earlier snapshot, as a new commit-log entry."""
    from registry.publish import ConcurrentPublish, rollback_snapshot

    try:
        entry = rollback_snapshot(configured_storage(), snapshot_id, reason=reason)
    except (ValueError, ConcurrentPublish) as err:
        typer.echo(f"rollback refused: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"latest is now {entry.snapshot_id} (log seq {entry.seq}; was "
               f"{entry.previous_snapshot})")


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
        with stderr_progress() as progress:
            key = write_report(storage, settings, snapshot_id, progress=progress)
    except SnapshotError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    typer.echo(storage.uri_for(key))


def _snapshot_or_exit(storage: Storage, snapshot_id: str | None) -> Snapshot:
    from registry.snapshot.reader import SnapshotError, open_snapshot

    try:
        return open_snapshot(storage, snapshot_id)
    except SnapshotError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


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
