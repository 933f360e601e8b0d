"""Committed snapshots: `registry snapshots`, `show`, `lookup` (one merchant's verdict), `diff`
(the delta from an earlier snapshot), `verify`, `rollback`, `gc` and `report` (a snapshot's HTML
report)."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from datetime import date
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


def lookup(
    uscc: Annotated[str, typer.Argument(
        metavar="USCC", help="The merchant's unified social credit code.")],
    snapshot: Annotated[str | None, typer.Option("--snapshot", help="Snapshot id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Whether a merchant is in the registry: verdict, grade, score, disqualifications,
    regions, valid until. Reads one row group of the snapshot (latest by default).

    Exit 1 when the merchant is not listed (未列入); a code that is not 18 characters of the
    USCC alphabet is a usage error."""
    import unicodedata

    from registry.config.published import load_published_contracts
    from registry.ingest.uscc import USCC_SHAPE

    code = unicodedata.normalize("NFKC", uscc).strip().upper()
    if not re.fullmatch(USCC_SHAPE, code):
        raise typer.BadParameter(
            f"{uscc!r} is not a unified social credit code (统一社会信用代码): 18 characters, "
            "digits and capital letters other than I, O, Z, S, V", param_hint="USCC")
    snap = _snapshot_or_exit(configured_storage(), snapshot)
    row = snap.merchant(code)
    meanings = {c.name: {v.value: v for v in c.values}
                for c in load_published_contracts()["merchants"].columns}
    where = {"uscc": code, "snapshot_id": snap.snapshot_id, "as_of": snap.as_of.isoformat()}
    if row is None:
        if as_json:
            typer.echo(json.dumps({**where, "listed": False, "verdict": "unlisted"},
                                  ensure_ascii=False, indent=2))
        else:
            typer.echo(f"{code}: 未列入 / not listed: not in the registry (snapshot "
                       f"{snap.snapshot_id}, as_of {snap.as_of})")
        raise typer.Exit(1)
    disqualifications = [
        {"code": c, "zh": getattr(meanings["disqualifications"].get(c), "description_zh", ""),
         "en": getattr(meanings["disqualifications"].get(c), "description_en", "")}
        for c in row["disqualifications"]
    ]
    if as_json:
        doc = {**where, "listed": True, "verdict": row.get("verdict"), "name": row["name"],
               "grade": row["grade"], "score": row["score"],
               "disqualifications": disqualifications, "regions": row["regions"],
               "valid_until": row["valid_until"], "merchant": row}
        typer.echo(json.dumps(doc, ensure_ascii=False, default=str, indent=2))
        return
    verdict = row.get("verdict")  # absent from snapshots published before merchants 1.1.0
    meaning = meanings["verdict"].get(verdict or "")
    typer.echo(f"{code}  {row['name']}  (snapshot {snap.snapshot_id}, as_of {snap.as_of})")
    typer.echo(f"verdict   {verdict or '-'}" + (
        f": {meaning.description_zh} / {meaning.description_en}" if meaning else ""))
    typer.echo(f"grade     {row['grade'] or '-'} · score {row['score']}")
    if disqualifications:
        typer.echo("disqualifications 取消资格:")
        for d in disqualifications:
            typer.echo(f"  {d['code']}: {d['zh']} / {d['en']}")
    else:
        typer.echo("disqualifications 取消资格: none 无")
    typer.echo(f"regions   {', '.join(row['regions'])} · valid until "
               f"{_valid_until(row['valid_until'])}")


def diff(
    since: Annotated[str, typer.Argument(
        metavar="FROM", help="The earlier snapshot: its id, or an as_of date (YYYY-MM-DD) for "
                             "the snapshot in effect then.")],
    to: Annotated[str | None, typer.Option("--to", help="The later snapshot id (default: "
                                                        "latest).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every change as JSON.")] = False,
) -> None:
    """Merchants added, removed and updated from snapshot FROM to the latest (or --to).

    One net delta however many snapshots lie between: a merchant added and removed again
    does not appear. Reads both merchants tables in full. Exit 1 when FROM is unknown, was
    removed by gc, or is later than --to."""
    from registry.snapshot.reader import SnapshotError

    start: str | date = since
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", since):
        try:
            start = date.fromisoformat(since)
        except ValueError:
            raise typer.BadParameter(f"{since!r} is not a date", param_hint="FROM") from None
    snap = _snapshot_or_exit(configured_storage(), to)
    try:
        changes = snap.changes_since(start)
    except SnapshotError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(changes.to_dicts(), ensure_ascii=False, default=str, indent=2))
        return
    counts = changes.get_column("change").value_counts(sort=True).rows()
    typer.echo(f"{since} -> {snap.snapshot_id}: "
               + (", ".join(f"{k} {n}" for k, n in counts) or "no changes"))
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
    if report.state_files_removed:
        typer.echo(f"removed {report.state_files_removed} current-state file(s) no pointer names")


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


def _valid_until(value: date | None) -> str:
    """A merchant's validity end as the commands print it: the date, or 长期 / no end for the
    date a filing without an end is published as (the merchants contract's ``no_end``)."""
    from registry.config.contracts import load_contracts
    from registry.config.settings import load_settings

    no_end = load_contracts(load_settings().schemas_dir)["merchants"].by_name[
        "valid_until"].no_end
    return "长期 / no end" if no_end is not None and value == no_end.reads_as else str(value)


def _merchant_explained(row: dict) -> list[str]:
    lines = [
        f"{row['uscc']}  {row['name']}" + ("  (name conflict: " + " / ".join(
            row["name_variants"]) + ")" if row["name_conflict"] else ""),
        f"regions {', '.join(row['regions'])} · registered in {row['registered_region'] or '-'}"
        f" · programs {', '.join(row['programs'])} · valid until "
        f"{_valid_until(row['valid_until'])}",
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
