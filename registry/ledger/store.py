"""Reading and writing the ledger's records in storage: the only code that touches ``ledger/``.

Every write is create-if-absent or compare-and-swap, so that two workers or a rerun after a
crash can never leave two versions of one fact.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel

from registry.ledger.records import (
    BatchRecord,
    InEffect,
    IngestClaim,
    JournalEntry,
    JournalKind,
    Release,
    SeenMarker,
    held_unreleased,
    in_effect,
    landed_stamp,
    latest_before,
    ordered,
    publishable,
)
from registry.storage import AlreadyExists, NotFound, Storage, layout


class LedgerError(ValueError):
    """A ledger record that disagrees with where it is stored."""


def _bytes(record: BaseModel) -> bytes:
    return json.dumps(record.model_dump(mode="json"), ensure_ascii=False, indent=2,
                      ).encode("utf-8")


def _ref_of_key(key: str, prefix: str) -> tuple[str, str, str] | None:
    """(dataset, region, batch id) of a ``{prefix}{dataset}/{region}/{batch_id}.json`` key."""
    parts = key[len(prefix):].removesuffix(".json").split("/")
    return (parts[0], parts[1], parts[2]) if key.endswith(".json") and len(parts) == 3 else None


# --- claims ------------------------------------------------------------------------------------


def read_claim(storage: Storage, dataset: str, region: str, batch_id: str
               ) -> tuple[IngestClaim, str] | None:
    """The claim on an upload and its etag (for :func:`replace_claim`), or None."""
    key = layout.claim_key(dataset, region, batch_id)
    try:
        etag = storage.head(key).etag
        return IngestClaim.model_validate_json(storage.read_bytes(key)), etag
    except NotFound:
        return None


def claims(storage: Storage) -> list[IngestClaim]:
    """Every claim, finished or not, sorted by dataset, region and batch id."""
    found = [IngestClaim.model_validate_json(storage.read_bytes(info.key))
             for info in storage.list(layout.CLAIMS_PREFIX) if info.key.endswith(".json")]
    return sorted(found, key=lambda c: (c.dataset, c.region, c.batch_id))


def create_claim(storage: Storage, claim: IngestClaim) -> str | None:
    """Create the claim if nobody has; its etag, or None when a claim exists already."""
    try:
        return storage.put_if_absent(layout.claim_key(claim.dataset, claim.region,
                                                      claim.batch_id), _bytes(claim))
    except AlreadyExists:
        return None


def replace_claim(storage: Storage, claim: IngestClaim, etag: str) -> str:
    """Replace the claim read with ``etag``; raises ``PreconditionFailed`` when another worker
    replaced it first."""
    return storage.replace_if_match(
        layout.claim_key(claim.dataset, claim.region, claim.batch_id), _bytes(claim), etag)


def claim_is_live(storage: Storage, dataset: str, region: str, batch_id: str, *,
                  now: datetime, lease_s: float) -> bool:
    """Whether a worker holds an unfinished claim on the batch younger than ``lease_s``."""
    found = read_claim(storage, dataset, region, batch_id)
    if found is None or found[0].state != "claimed":
        return False
    return now - found[0].claimed_at <= timedelta(seconds=lease_s)


# --- batch records -----------------------------------------------------------------------------


def committed_refs(storage: Storage) -> set[tuple[str, str, str]]:
    """(dataset, region, batch id) of every committed batch, from one listing."""
    return {ref for info in storage.list(layout.BATCHES_PREFIX)
            if (ref := _ref_of_key(info.key, layout.BATCHES_PREFIX)) is not None}


def _record_at(storage: Storage, key: str) -> BatchRecord:
    record = BatchRecord.model_validate_json(storage.read_bytes(key))
    expected = layout.batch_record_key(record.dataset, record.region, record.batch_id)
    if key != expected:
        raise LedgerError(f"batch record {key} describes {expected}")
    return record


def batch_records(storage: Storage, *, dataset: str | None = None, region: str | None = None
                  ) -> list[BatchRecord]:
    """Every committed batch (of ``dataset``, and of ``region`` when both are given), sorted by
    dataset, region and ledger order. Raises :class:`LedgerError` for a record stored under
    another batch's key and ``pydantic.ValidationError`` for a malformed one."""
    prefix = layout.BATCHES_PREFIX
    if dataset:
        prefix += f"{dataset}/" + (f"{region}/" if region else "")
    keys = [info.key for info in storage.list(prefix) if info.key.endswith(".json")]
    return ordered(_read_all(storage, keys))


# Records are small objects read one GET each: on S3 the reads overlap, up to this many at once.
# A pool costs well under a millisecond; a GET to S3 costs milliseconds, so a few keys are
# worth one (the report's cards read a dozen records, then the held ones and their releases).
_READERS = 16


def _read_all(storage: Storage, keys: list[str], *, missing_ok: bool = False
              ) -> list[BatchRecord]:
    """The records at ``keys``; with ``missing_ok``, those of the keys that exist."""
    def read(key: str) -> BatchRecord | None:
        try:
            return _record_at(storage, key)
        except NotFound:
            if missing_ok:
                return None
            raise

    if len(keys) < 2:
        found = [read(key) for key in keys]
    else:
        with ThreadPoolExecutor(min(_READERS, len(keys)), thread_name_prefix="ledger-read"
                                ) as pool:
            found = list(pool.map(read, keys))
    return [record for record in found if record is not None]


# A batch id as batch_id_for spells it: its landing second, then the hash part.
_ID_SECOND = re.compile(r"^(\d{8}T\d{6}Z)-[0-9a-f]{12}$")


def latest_batch_before(
    storage: Storage, dataset: str, region: str, order: tuple[datetime, str, str], *,
    counts: Callable[[BatchRecord], bool] = lambda record: True,
) -> BatchRecord | None:
    """The last batch of ``dataset`` and ``region`` ordered before ``order`` among those
    ``counts`` accepts: :func:`records.latest_before` over them, without reading them all.

    A batch id begins with its landing second, the first part of the ledger order, so every
    batch of an earlier second is ordered before every batch of a later one. One listing
    groups the stream's records by second; they are read from ``order``'s second back, one
    second at a time, and the first second holding an accepted batch before ``order`` holds
    the answer. An upload's question then costs the records of its last seconds, not the
    stream's history. A stream with an id not spelled by :func:`records.batch_id_for` is read
    whole."""
    prefix = f"{layout.BATCHES_PREFIX}{dataset}/{region}/"
    by_second: dict[str, list[str]] = {}
    for info in storage.list(prefix):
        ref = _ref_of_key(info.key, layout.BATCHES_PREFIX)
        if ref is None:
            continue
        spelled = _ID_SECOND.match(ref[2])
        if spelled is None:
            every = batch_records(storage, dataset=dataset, region=region)
            return latest_before([r for r in every if counts(r)], order)
        by_second.setdefault(spelled.group(1), []).append(info.key)
    until = landed_stamp(order[0])
    for second in sorted((s for s in by_second if s <= until), reverse=True):
        found = latest_before([r for r in _read_all(storage, by_second[second]) if counts(r)],
                              order)
        if found is not None:
            return found
    return None


def read_batch_record(storage: Storage, dataset: str, region: str, batch_id: str
                      ) -> BatchRecord | None:
    try:
        return _record_at(storage, layout.batch_record_key(dataset, region, batch_id))
    except NotFound:
        return None


def read_batch_records(storage: Storage, refs: Iterable[tuple[str, str, str]]
                       ) -> list[BatchRecord]:
    """The committed records of ``refs`` ((dataset, region, batch id) each) that exist, in
    their order, read side by side."""
    return _read_all(storage, [layout.batch_record_key(*ref) for ref in refs], missing_ok=True)


def find_batch(storage: Storage, batch_id: str) -> list[BatchRecord]:
    """The committed batches with id ``batch_id`` (one, unless two regions or datasets
    received the same bytes in the same second)."""
    return [_record_at(storage, info.key) for info in storage.list(layout.BATCHES_PREFIX)
            if info.key.endswith(f"/{batch_id}.json")]


def commit_batch(storage: Storage, record: BatchRecord) -> BatchRecord:
    """Write the record that commits a batch, create-if-absent, and return the committed one:
    ours, or the identical batch a worker that took over our claim committed first. The
    journal hears of it first."""
    key = layout.batch_record_key(record.dataset, record.region, record.batch_id)
    if record.status == "held":
        _index_held(storage, record)
    _journal(storage, "batch", record.dataset, record.region, record.batch_id)
    try:
        storage.put_if_absent(key, _bytes(record))
        return record
    except AlreadyExists:
        return _record_at(storage, key)


# --- releases ----------------------------------------------------------------------------------


def released_ids(storage: Storage) -> set[str]:
    """Ids of every released batch, from one listing."""
    return {ref[2] for info in storage.list(layout.RELEASES_PREFIX)
            if (ref := _ref_of_key(info.key, layout.RELEASES_PREFIX)) is not None}


def read_release(storage: Storage, record: BatchRecord) -> Release | None:
    try:
        return Release.model_validate_json(storage.read_bytes(
            layout.release_key(record.dataset, record.region, record.batch_id)))
    except NotFound:
        return None


def releases_of(storage: Storage, record: BatchRecord) -> list[Release]:
    """The releases that count for ``record``: its own, and for a duplicate its original's."""
    ids = [record.batch_id, *([record.same_as] if record.same_as else [])]
    found = (read_release(storage, record.model_copy(update={"batch_id": i})) for i in ids)
    return [release for release in found if release is not None]


def write_release(storage: Storage, release: Release) -> Release:
    """Record a release, create-if-absent; raises ``AlreadyExists`` when one exists. The
    journal hears of it first."""
    _journal(storage, "release", release.dataset, release.region, release.batch_id)
    storage.put_if_absent(layout.release_key(release.dataset, release.region, release.batch_id),
                          _bytes(release))
    return release


# --- the selections, over what is stored -------------------------------------------------------


def publishable_batches(storage: Storage) -> list[BatchRecord]:
    """Every committed batch that may be published (:func:`records.publishable`)."""
    return publishable(batch_records(storage), released_ids(storage))


def held_batches(storage: Storage, *, released: set[str] | None = None) -> list[BatchRecord]:
    """Every batch held by the gate and not released (:func:`records.held_unreleased`),
    reading only the records of held batches not released themselves: the held index names
    them (its key is written before the batch's record, so a key whose record is missing is a
    commit that never happened, and is passed over). A store from before the index is indexed
    on its first read, from every record. ``released`` is :func:`released_ids`, when the
    caller has it already."""
    if released is None:
        released = released_ids(storage)
    keys = [layout.batch_record_key(*ref) for ref in _held_refs(storage) if ref[2] not in released]
    return held_unreleased(_read_all(storage, keys, missing_ok=True), released)


def held_records(storage: Storage) -> list[BatchRecord]:
    """Every committed batch the gate held, released since or not, from the held index (see
    :func:`held_batches`), sorted by dataset, region and ledger order."""
    keys = [layout.batch_record_key(*ref) for ref in _held_refs(storage)]
    return ordered(_read_all(storage, keys, missing_ok=True))


def held_at(storage: Storage, when: datetime) -> list[BatchRecord]:
    """The batches the gate had held, committed by ``when`` and not released by then (a
    duplicate follows its original's release), from the held index: what a snapshot published
    at ``when`` left out as held, whatever was released since."""
    return [r for r in held_records(storage) if r.created_at <= when
            and not any(release.released_at <= when for release in releases_of(storage, r))]


def batches_committed_between(storage: Storage, since: datetime | None, until: datetime
                              ) -> list[BatchRecord]:
    """The batches whose journal entry was written after ``since`` (from the first entry when
    None) and by ``until``, sorted by dataset, region and ledger order: one journal listing and
    those records, never the ledger's history. Consecutive windows share no batch. A commit
    whose record is not there yet (its journal entry is written just before it) is left out."""
    refs: dict[tuple[str, str, str], None] = {}
    for _, entry in journal_since(storage, since):
        if (entry.kind == "batch" and entry.written_at <= until
                and (since is None or entry.written_at > since)):
            refs[(entry.dataset, entry.region, entry.batch_id)] = None
    keys = [layout.batch_record_key(*ref) for ref in refs]
    return ordered(_read_all(storage, keys, missing_ok=True))


def _index_held(storage: Storage, record: BatchRecord) -> None:
    with contextlib.suppress(AlreadyExists):
        storage.put_if_absent(layout.held_key(record.dataset, record.region, record.batch_id),
                              b"{}")


def _held_refs(storage: Storage) -> list[tuple[str, str, str]]:
    keys = [info.key for info in storage.list(layout.HELD_PREFIX)]
    if layout.HELD_INDEX_COMPLETE_KEY not in keys:
        for record in batch_records(storage):
            if record.status == "held":
                _index_held(storage, record)
        with contextlib.suppress(AlreadyExists):
            storage.put_if_absent(layout.HELD_INDEX_COMPLETE_KEY, b"{}")
        keys = [info.key for info in storage.list(layout.HELD_PREFIX)]
    return [ref for key in keys if (ref := _ref_of_key(key, layout.HELD_PREFIX)) is not None]


def batches_in_effect(storage: Storage) -> list[InEffect]:
    """The batches whose rows the next publication reads (:func:`records.in_effect`)."""
    return in_effect(publishable_batches(storage))


# --- the journal -------------------------------------------------------------------------------

JOURNAL_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"


def journal_stamp(at: datetime) -> str:
    """``at`` as journal keys begin: UTC to the microsecond, so keys sort by writing time."""
    return at.astimezone(UTC).strftime(JOURNAL_STAMP_FORMAT)


def _journal(storage: Storage, kind: JournalKind, dataset: str, region: str,
             batch_id: str) -> None:
    entry = JournalEntry(kind=kind, dataset=dataset, region=region, batch_id=batch_id,
                         written_at=datetime.now(UTC))
    key = layout.journal_key(journal_stamp(entry.written_at), kind, dataset, region, batch_id)
    with contextlib.suppress(AlreadyExists):  # the same microsecond and batch: one says it
        storage.put_if_absent(key, _bytes(entry))


def journal_since(storage: Storage, since: datetime | None) -> list[tuple[str, JournalEntry]]:
    """The journal entries written at or after ``since`` (every entry when None), with their
    keys, in writing order. One listing; the entries are read from their keys."""
    start_after = layout.JOURNAL_PREFIX + journal_stamp(since) if since is not None else None
    found = []
    for info in storage.list(layout.JOURNAL_PREFIX, start_after=start_after):
        name = info.key[len(layout.JOURNAL_PREFIX):].removesuffix(".json")
        parts = name.split("-", 4)
        if len(parts) != 5 or parts[1] not in ("batch", "release"):
            raise LedgerError(f"journal entry {info.key} is not named as the ledger names them")
        stamp, kind, dataset, region, batch_id = parts
        written = datetime.strptime(stamp, JOURNAL_STAMP_FORMAT).replace(tzinfo=UTC)
        found.append((info.key, JournalEntry(kind=kind, dataset=dataset, region=region,
                                             batch_id=batch_id, written_at=written)))
    return found


# --- seen markers ------------------------------------------------------------------------------


def seen_keys(storage: Storage) -> set[str]:
    """Keys of every seen marker, from one listing (compare with :func:`seen_marker_key`)."""
    return {info.key for info in storage.list(layout.SEEN_PREFIX)}


def seen_marker_key(landing_key: str, version: str) -> str:
    return layout.seen_key(landing_key, version)


def mark_seen(storage: Storage, marker: SeenMarker) -> None:
    storage.write_bytes(layout.seen_key(marker.key, marker.version), _bytes(marker))


def forget_seen(storage: Storage) -> int:
    """Delete every seen marker, so the next run looks at every landing object again (their
    claims still make each processed once); returns how many were deleted."""
    keys = list(seen_keys(storage))
    for key in keys:
        storage.delete(key)
    return len(keys)
