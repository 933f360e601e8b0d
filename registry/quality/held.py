"""Held batches and their release: what ``registry batches list`` shows
(:func:`batch_listings`), and :func:`release_batch`, after which a held batch counts in the next
publication."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from registry import ledger
from registry.storage import AlreadyExists, Storage


@dataclass(frozen=True)
class BatchListing:
    """A committed batch as ``registry batches list`` shows it."""

    batch_id: str
    dataset: str
    region: str
    mode: str
    status: str  # released | held | held, released
    accepted: int
    held_reasons: tuple[str, ...] = ()
    reasons_en: tuple[str, ...] = ()
    release: dict[str, Any] | None = None
    data_docs: str | None = None


def batch_listings(storage: Storage, *, held_only: bool = False) -> list[BatchListing]:
    """Every committed batch (or only those held and not released), with its gate outcome and
    release record, sorted by region, dataset and ledger order."""
    released = ledger.released_ids(storage)
    records = (ledger.held_batches(storage) if held_only
               else sorted(ledger.batch_records(storage),
                           key=lambda r: (r.region, r.dataset, r.order)))
    listed = []
    for record in records:
        held = record.status == "held"
        is_released = held and record.batch_id in released
        release = ledger.read_release(storage, record) if is_released else None
        listed.append(BatchListing(
            batch_id=record.batch_id, dataset=record.dataset, region=record.region,
            mode=record.mode,
            status=("held, released" if is_released else "held") if held else record.status,
            accepted=record.accepted,
            held_reasons=tuple(record.held_reasons),
            reasons_en=tuple(f["message_en"] for f in record.reasons),
            release=release.model_dump(mode="json") if release else None,
            data_docs=record.data_docs,
        ))
    return listed


class ReleaseRefused(ValueError):
    """The batch cannot be released: unknown, not held, or already released."""


def release_batch(storage: Storage, batch_id: str, *, reason: str, by: str,
                  now: datetime | None = None) -> dict[str, Any]:
    """Release a held batch so that it counts in the next publication: record who, when and
    why (:class:`registry.ledger.Release`, create-if-absent), and return the release.

    Raises :class:`ReleaseRefused` for an unknown batch id, a batch that is not held, one
    already released, or an empty reason or name."""
    if not reason.strip() or not by.strip():
        raise ReleaseRefused("a release needs a reason and who releases it")
    matches = ledger.find_batch(storage, batch_id)
    if not matches:
        raise ReleaseRefused(f"no committed batch has the id {batch_id!r}")
    if len(matches) > 1:
        raise ReleaseRefused(f"batch id {batch_id!r} names {len(matches)} batches")
    (record,) = matches
    if record.status != "held":
        raise ReleaseRefused(f"batch {batch_id} is not held (status {record.status!r})")
    release = ledger.Release(
        batch_id=batch_id, dataset=record.dataset, region=record.region, released_by=by,
        released_at=now or datetime.now(UTC), reason=reason, held_reasons=record.held_reasons,
    )
    try:
        ledger.write_release(storage, release)
    except AlreadyExists:
        earlier = ledger.read_release(storage, record)
        raise ReleaseRefused(
            f"batch {batch_id} was already released by "
            f"{earlier.released_by if earlier else '?'} at "
            f"{earlier.released_at.isoformat() if earlier else '?'}") from None
    return release.model_dump(mode="json")
