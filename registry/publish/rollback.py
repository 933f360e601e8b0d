"""Rollback: point latest back at an earlier committed snapshot, as a new log entry."""

from __future__ import annotations

from datetime import UTC, datetime

from registry.publish.protocol import ConcurrentPublish, move_latest, recover_latest
from registry.snapshot.formats import LogEntry
from registry.snapshot.reader import file_problems, read_log, read_manifest
from registry.storage import AlreadyExists, Storage
from registry.storage.layout import log_key, manifest_key


def rollback_snapshot(storage: Storage, snapshot_id: str, *, reason: str | None = None
                      ) -> LogEntry:
    """Point latest back at an earlier committed snapshot, as a new log entry.

    Raises ``ValueError`` when the snapshot was never committed, is already latest, or does not
    verify (a rollback must land on something readers can read), and
    :class:`ConcurrentPublish` when another writer took the sequence number.
    """
    latest = recover_latest(storage)
    if latest is None:
        raise ValueError("nothing has been published yet")
    if snapshot_id == latest.snapshot_id:
        raise ValueError(f"snapshot {snapshot_id} is already latest")
    committed = [e for e in read_log(storage) if e.snapshot_id == snapshot_id]
    if not committed:
        raise ValueError(f"snapshot {snapshot_id} was never committed to the log")
    manifest = read_manifest(storage, snapshot_id, committed[0].manifest_sha256)
    problems = file_problems(storage, manifest)
    if problems:
        raise ValueError(f"snapshot {snapshot_id} does not verify: " + "; ".join(problems))
    entry = LogEntry(
        seq=latest.seq + 1,
        action="rollback",
        snapshot_id=snapshot_id,
        manifest=manifest_key(snapshot_id),
        manifest_sha256=committed[0].manifest_sha256,
        as_of=manifest.as_of,
        previous_snapshot=latest.snapshot_id,
        committed_at=datetime.now(UTC),
        reason=reason,
    )
    try:
        storage.put_if_absent(log_key(entry.seq), entry.to_json_bytes())
    except AlreadyExists:
        raise ConcurrentPublish(f"log sequence {entry.seq} was taken by another writer"
                                ) from None
    move_latest(storage, entry)
    return entry
