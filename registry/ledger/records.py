"""The ledger's records as typed models, and the rules that pick batches from them (pure).

Four kinds of record live under ``ledger/`` (keys spelled in :mod:`registry.storage.layout`):

- :class:`IngestClaim`: one per batch id, created by the worker that processes the upload and
  finished with its outcome; a crashed worker's claim is taken over (``registry.ingest.pipeline``);
- :class:`BatchRecord`: the record whose presence commits a batch's staged and quarantined
  files, with the batch gate's verdict;
- :class:`Release`: who released a held batch, when and why;
- :class:`SeenMarker`: one per processed version of a landing object, so that a run finds the
  pending uploads with one listing;
- :class:`JournalEntry`: one per committed batch or release, written just before it under a
  key that sorts by writing time, so that a publisher finds what is new since its last read
  with one listing (``registry.publish.state``).

Order (docs/architecture.md, "Which upload is the latest"): a batch's place is when the
council's upload landed (the landing object's last-modified time, to the second, as S3 reports
it), then its landing key, then its batch id. Never when it was ingested: file names, ingest
order and parallelism never change which row is the latest.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

Mode = Literal["upsert", "replace"]
GateStatus = Literal["released", "held"]
# What became of an upload that was read (the receipt says which case applied):
# new: a batch of its own; duplicate: the same bytes as the region's and dataset's latest batch,
# which changes nothing; rejected: refused whole (no batch).
UploadCase = Literal["new", "duplicate", "rejected"]


class _Record(BaseModel):
    # Records written by an older release may carry fields this one no longer reads.
    model_config = ConfigDict(frozen=True, extra="ignore")


def landed_time(at: datetime) -> datetime:
    """``at`` to the whole second in UTC: the precision S3 and Ceph report last-modified times
    with, in listings and heads alike, so local disk and S3 order uploads the same way."""
    return at.astimezone(UTC).replace(microsecond=0)


def landed_stamp(at: datetime) -> str:
    """``at``'s landing second as ids spell it: ``20261130T071512Z``."""
    return landed_time(at).strftime("%Y%m%dT%H%M%SZ")


def batch_order(landed_at: datetime, source_key: str, batch_id: str
                ) -> tuple[datetime, str, str]:
    """The ledger order of a batch (module docstring): its landing second, then its landing
    key, then its id. Two uploads of one second are ordered by their keys, never by the hash
    part of their ids alone."""
    return (landed_at, source_key, batch_id)


def batch_id_for(landed_at: datetime, sha256: str) -> str:
    """``{landed second}-{sha256[:12]}``: the same upload always gets the same id, whoever
    ingests it and whenever. Within a region and dataset, two uploads share an id only when
    they landed in the same second with the same bytes, which makes them one batch."""
    return f"{landed_stamp(landed_at)}-{sha256[:12]}"


class ClaimOutcome(_Record):
    status: str
    case: UploadCase
    batch_id: str | None
    rows_in: int
    accepted: int
    quarantined: int
    file_error: str | None = None


class IngestClaim(_Record):
    """A worker's claim on one upload (``ledger/ingest/{dataset}/{region}/{batch_id}.json``)."""

    batch_id: str
    upload_id: str
    region: str
    dataset: str
    sha256: str
    source_key: str
    version: str
    landed_at: datetime
    claimed_at: datetime
    ingested_at: datetime
    state: Literal["claimed", "done"]
    takeovers: int = 0
    finished_at: datetime | None = None
    outcome: ClaimOutcome | None = None


class BatchRecord(_Record):
    """A committed batch (``ledger/batches/{dataset}/{region}/{batch_id}.json``)."""

    batch_id: str
    dataset: str
    region: str
    mode: Mode
    sha256: str
    source_key: str
    landed_at: datetime
    ingested_at: datetime
    created_at: datetime
    rows_in: int
    accepted: int
    quarantined: int
    status: GateStatus
    contract_version: str
    staged_key: str
    quarantine_key: str
    file: str | None = None
    format: str | None = None
    encoding: str | None = None
    sheet: str | None = None
    error_counts: dict[str, int] = {}
    held_reasons: list[str] = []
    quality: dict[str, Any] | None = None
    # A duplicate (the same bytes as the batch before it) reads the staged files of the batch
    # that first staged them, this id, instead of writing them again.
    same_as: str | None = None
    # A complete list's refused rows that name a merchant (a valid credit code) but no filing
    # (a key cell left empty): those merchants' codes. Each keeps its previous rows, as a
    # filing whose row was refused does (docs/architecture.md §8).
    kept_merchants: list[str] = []

    @property
    def order(self) -> tuple[datetime, str, str]:
        """Where the batch stands among its region's and dataset's batches (module docstring)."""
        return batch_order(self.landed_at, self.source_key, self.batch_id)

    @property
    def stages(self) -> str:
        """The batch whose staged rows this one reads (itself unless it is a duplicate)."""
        return self.same_as or self.batch_id

    @property
    def data_docs(self) -> str | None:
        return (self.quality or {}).get("data_docs")

    @property
    def reasons(self) -> list[dict[str, str]]:
        """The gate's failures: code, message_zh, message_en."""
        return [{"code": f["code"], "message_zh": f["message_zh"], "message_en": f["message_en"]}
                for f in (self.quality or {}).get("failures") or ()]


class Release(_Record):
    """A data engineer's release of a held batch."""

    batch_id: str
    dataset: str
    region: str
    released_by: str
    released_at: datetime
    reason: str
    held_reasons: list[str] = []

    @field_validator("released_by", "reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


JournalKind = Literal["batch", "release"]


class JournalEntry(_Record):
    """A batch committed or released (``ledger/journal/{written}-{kind}-{dataset}-{region}-
    {batch_id}.json``). Written just before the record it announces: an entry whose record is
    missing is a commit in flight, or one that died (its takeover writes a new entry)."""

    kind: JournalKind
    dataset: str
    region: str
    batch_id: str
    written_at: datetime


class SeenMarker(_Record):
    """One processed version of a landing object, and what became of it."""

    key: str
    version: str
    result: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Which batches count (pure)


def _released(record: BatchRecord, released: Collection[str]) -> bool:
    return record.batch_id in released or (record.same_as is not None
                                           and record.same_as in released)


def publishable(records: Iterable[BatchRecord], released: Collection[str]) -> list[BatchRecord]:
    """Batches that may be published: passed the gate, or held and then released (a
    duplicate also by its original's release). In ledger order within each dataset and
    region, groups sorted by dataset and region."""
    return ordered(r for r in records if r.status == "released" or _released(r, released))


def held_unreleased(records: Iterable[BatchRecord], released: Collection[str]
                    ) -> list[BatchRecord]:
    """Batches the gate held that nobody has released, sorted by region, dataset and order."""
    held = [r for r in records if r.status == "held" and not _released(r, released)]
    return sorted(held, key=lambda r: (r.region, r.dataset, r.order))


def ordered(records: Iterable[BatchRecord]) -> list[BatchRecord]:
    """``records`` sorted by dataset, region, then ledger order."""
    return sorted(records, key=lambda r: (r.dataset, r.region, r.order))


@dataclass(frozen=True)
class InEffect:
    """The batches of one dataset and region whose rows count, in ledger order.

    ``batches`` starts at the latest replace batch (the council's complete list then) when
    there is one. ``before`` is what was in effect just before that replace batch: a filing
    whose row the replace batch quarantined keeps its row from there (a typo never withdraws
    a filing; only leaving it out of the list does)."""

    dataset: str
    region: str
    batches: tuple[BatchRecord, ...]
    before: InEffect | None = None

    @property
    def replace(self) -> BatchRecord | None:
        """The replace batch the effect starts with, if any."""
        return self.batches[0] if self.batches and self.batches[0].mode == "replace" else None

    def all_batches(self) -> list[BatchRecord]:
        """Every batch whose rows may count, ``before``'s included, in ledger order."""
        earlier = self.before.all_batches() if self.before else []
        return [*earlier, *self.batches]


def _without_repeats(records: list[BatchRecord]) -> list[BatchRecord]:
    """Drop a batch whose bytes and mode equal the batch just before it: sending the current
    state again changes nothing, whichever upload was ingested first."""
    kept: list[BatchRecord] = []
    for record in records:
        if kept and (kept[-1].sha256, kept[-1].mode) == (record.sha256, record.mode):
            continue
        kept.append(record)
    return kept


def _in_effect_of(dataset: str, region: str, records: list[BatchRecord]) -> InEffect:
    replaces = [i for i, r in enumerate(records) if r.mode == "replace"]
    if not replaces:
        return InEffect(dataset, region, tuple(records))
    start = replaces[-1]
    before = _in_effect_of(dataset, region, records[:start]) if start else None
    return InEffect(dataset, region, tuple(records[start:]), before)


def in_effect(publishable_batches: Iterable[BatchRecord]) -> list[InEffect]:
    """Of the publishable batches, those whose rows count, per dataset and region (sorted).

    Per dataset and region, in ledger order, after dropping repeats of the batch before: the
    latest ``replace`` batch and every later one count; earlier ones only through
    :attr:`InEffect.before`, for the filings the replace batch quarantined."""
    groups: dict[tuple[str, str], list[BatchRecord]] = defaultdict(list)
    for record in ordered(publishable_batches):
        groups[(record.dataset, record.region)].append(record)
    return [_in_effect_of(dataset, region, _without_repeats(groups[(dataset, region)]))
            for dataset, region in sorted(groups)]


def latest_before(records: Iterable[BatchRecord], record_order: tuple[datetime, str, str]
                  ) -> BatchRecord | None:
    """The last of ``records`` (one dataset and region) ordered before ``record_order``."""
    earlier = [r for r in records if r.order < record_order]
    return max(earlier, key=lambda r: r.order) if earlier else None
