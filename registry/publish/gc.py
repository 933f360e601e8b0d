"""Garbage collection: orphaned and expired snapshot folders with their reports, and what
crashed ingest workers left of batches never committed. Latest and its predecessor are never
removed; nothing a council sent is ever removed."""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from registry import ledger
from registry.config.settings import Settings
from registry.publish.protocol import SNAPSHOT_ID_PATTERN, recover_latest
from registry.publish.state import state_keys_in_use
from registry.report import update_reports_index
from registry.snapshot.reader import read_log, read_manifest
from registry.storage import ObjectInfo, Storage
from registry.storage.layout import (
    BATCH_DOCS_PREFIX,
    QUARANTINE_PREFIX,
    REPORTS_PREFIX,
    SNAPSHOTS_PREFIX,
    STAGED_PREFIX,
    STATE_PREFIX,
    batch_of_key,
    manifest_key,
    report_prefix,
)

log = logging.getLogger(__name__)


@dataclass
class GcReport:
    orphans_removed: list[str] = field(default_factory=list)
    expired_removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    objects_deleted: int = 0
    # Batches a crashed ingest worker staged but never committed.
    batches_removed: list[str] = field(default_factory=list)
    # Current-state files no pointer names (superseded, or left by a publisher that died).
    state_files_removed: int = 0


def _delete_snapshot(storage: Storage, snapshot_id: str, keys: list[str]) -> int:
    # The manifest goes first: a folder without one is plainly not a snapshot, even if this
    # process dies half-way through. Its report (and the gate's Data Docs in it) goes last.
    first = manifest_key(snapshot_id)
    ordered = sorted(keys, key=lambda k: k != first)
    ordered += [info.key for info in storage.list(report_prefix(snapshot_id))]
    if first in ordered:
        storage.delete(first)
    # The rest one DELETE per object: on S3 they overlap.
    with ThreadPoolExecutor(8, thread_name_prefix="gc-delete") as pool:
        list(pool.map(storage.delete, [key for key in ordered if key != first]))
    return len(ordered)


def collect_garbage(
    storage: Storage,
    settings: Settings,
    *,
    grace_seconds: float = 3600,
    now: datetime | None = None,
) -> GcReport:
    """Remove snapshot folders no log entry commits once their newest object is older than
    ``grace_seconds`` (a publisher may still be writing a younger one), and committed snapshots
    beyond the ``snapshot_retention`` most recent, each with its ``reports/{id}/`` folder; and
    what crashed ingest workers left of batches never committed
    (:func:`remove_uncommitted_batches`). Latest and its predecessor
    are never removed.
    """
    now = now or datetime.now(UTC)
    latest = recover_latest(storage)
    committed = [e for e in read_log(storage) if e.action == "publish"]
    folders: dict[str, list] = defaultdict(list)
    for info in storage.list(SNAPSHOTS_PREFIX):
        snapshot_id = info.key[len(SNAPSHOTS_PREFIX):].split("/", 1)[0]
        folders[snapshot_id].append(info)

    protected: set[str] = set()
    if latest is not None:
        protected.add(latest.snapshot_id)
        # Raises when latest's manifest is gone or damaged: gc must not delete anything then.
        predecessor = read_manifest(
            storage, latest.snapshot_id, latest.manifest_sha256
        ).previous_snapshot
        if predecessor:
            protected.add(predecessor)

    report = GcReport()
    committed_ids = {e.snapshot_id for e in committed}
    cutoff = now - timedelta(seconds=grace_seconds)
    # A publisher that lost the race or died before writing any data file leaves only the
    # registry gate's Data Docs in its report folder.
    for info in storage.list(REPORTS_PREFIX):
        snapshot_id = info.key[len(REPORTS_PREFIX):].split("/", 1)[0]
        if SNAPSHOT_ID_PATTERN.match(snapshot_id) and snapshot_id not in committed_ids:
            folders.setdefault(snapshot_id, [])
    for snapshot_id, objects in sorted(folders.items()):
        if snapshot_id in committed_ids or snapshot_id in protected:
            continue
        reports = list(storage.list(report_prefix(snapshot_id)))
        if max(o.last_modified for o in [*objects, *reports]) <= cutoff:
            report.objects_deleted += _delete_snapshot(
                storage, snapshot_id, [o.key for o in objects]
            )
            report.orphans_removed.append(snapshot_id)

    newest_first = sorted(
        {e.snapshot_id: e.seq for e in committed if e.snapshot_id in folders}.items(),
        key=lambda item: item[1],
        reverse=True,
    )
    keep = {sid for sid, _ in newest_first[: settings.snapshot_retention]} | protected
    for snapshot_id, _ in newest_first:
        if snapshot_id in keep:
            report.kept.append(snapshot_id)
            continue
        report.objects_deleted += _delete_snapshot(
            storage, snapshot_id, [o.key for o in folders[snapshot_id]]
        )
        report.expired_removed.append(snapshot_id)
    report.kept.sort()
    removed = [*report.orphans_removed, *report.expired_removed]
    if removed:
        update_reports_index(storage, remove=removed)
    report.batches_removed = remove_uncommitted_batches(storage, settings, cutoff=cutoff, now=now)
    report.state_files_removed = remove_unused_state(storage, cutoff=cutoff)
    return report


def remove_unused_state(storage: Storage, *, cutoff: datetime) -> int:
    """Delete the current state's files that the pointer in force does not name and that are
    not younger than ``cutoff`` (a publisher may be writing a newer state); returns how many.
    The state is derived data: nothing is lost, the next publication rebuilds what it needs."""
    in_use = state_keys_in_use(storage)
    removed = 0
    for info in storage.list(STATE_PREFIX):
        if info.key not in in_use and info.last_modified <= cutoff:
            storage.delete(info.key)
            removed += 1
    if removed:
        log.info("removed %d current-state file(s) no pointer names", removed)
    return removed


def remove_uncommitted_batches(
    storage: Storage, settings: Settings, *, cutoff: datetime, now: datetime | None = None
) -> list[str]:
    """Delete what a crashed ingest worker left of a batch that was never committed, and
    return the batch ids removed: staged and quarantined files and the batch gate's Data Docs
    with no batch record, whose newest object is not younger than ``cutoff``.

    A batch whose claim is still live (``ingest_claim_lease_s``) is left alone, whatever its
    age: its worker may be about to commit it. An expired claim is safe to clean up: a later
    takeover writes the same files again under the same batch id. Raw uploads are never
    removed (nothing a council sent is lost)."""
    now = now or datetime.now(UTC)
    committed = ledger.committed_refs(storage)
    found: dict[tuple[str, str, str], list[ObjectInfo]] = {}
    for prefix in (STAGED_PREFIX, QUARANTINE_PREFIX, BATCH_DOCS_PREFIX):
        for info in storage.list(prefix):
            batch = batch_of_key(info.key)
            if batch is not None and batch not in committed:
                found.setdefault(batch, []).append(info)
    removed = []
    for (dataset, region, batch_id), objects in sorted(found.items()):
        if max(o.last_modified for o in objects) > cutoff:
            continue
        if ledger.claim_is_live(storage, dataset, region, batch_id, now=now,
                                lease_s=settings.ingest_claim_lease_s):
            continue
        for info in objects:
            storage.delete(info.key)
        log.warning("removed uncommitted batch %s (%s, %s): %d object(s)", batch_id, dataset,
                    region, len(objects))
        removed.append(batch_id)
    return removed
