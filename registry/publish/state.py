"""The compacted current state (docs/architecture.md §11.8): for each dataset and region, the rows
in effect (the latest row per natural key, in ledger order) as one Parquet file, so that a
publication reads what changed since the last one instead of every batch ever staged.

The state is derived data. It is rebuilt from the ledger and the staged batches whenever it
cannot be brought forward (``registry publish --full`` rebuilds it whole), and a publication
reads:

- the pointer ``state/current.json``, which names each partition's file and what it absorbed;
- the journal entries written since the pointer's mark (one listing with a start-after,
  :func:`registry.ledger.journal_since`) and the records they name;
- the staged rows of the batches that are new, and the partitions' files.

A partition is brought forward when every new publishable batch stands after the last one it
absorbed, in ledger order; otherwise (a held batch released later, an upload that landed
earlier but was ingested later, ``as_of`` moved back) it is rebuilt from the ledger. Complaints
and inspections dated before the score model's window leave the working set: they are filtered
as they are read and dropped from a partition's file when it is next written. They stay in
staged for audit.

Writing follows the snapshots' discipline: a new state's files go under a new generation prefix
(never overwritten), then the pointer moves by compare-and-swap (create-if-absent the first
time). A crash at any step leaves the previous pointer and its files whole; files that no
pointer names are removed by ``registry gc`` after the grace period.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict

from registry import ledger
from registry.build.columns import ORDER_COLUMN, STAGED_COLUMNS, StagedInputs
from registry.build.merchants import latest_rows
from registry.config.crashpoints import crash_point
from registry.config.settings import Settings
from registry.ledger import BatchRecord, InEffect
from registry.publish.inputs import kept_rows, rows_in_effect, staged_batch
from registry.storage import AlreadyExists, NotFound, PreconditionFailed, Storage
from registry.storage.layout import (
    DATASETS,
    STAGED_PREFIX,
    STATE_POINTER_KEY,
    STATE_PREFIX,
    state_part_key,
)

log = logging.getLogger(__name__)

STATE_FORMAT = 1
# Journal entries are listed again for this long after the newest one read, so that an entry
# written by a worker whose clock runs behind the publisher's, or a commit still in flight when
# the journal was listed, is still found. Clocks of ingest workers and publishers must agree
# within this (NTP does far better).
JOURNAL_LAG = timedelta(minutes=10)
# The dated column of the datasets whose rows leave the working set with the score window.
WINDOW_COLUMNS = {"complaints": "received_on", "inspections": "tested_on"}
# A windowed partition untouched by new batches is rewritten (dropping what left the window)
# once its cutoff is this far behind; until then those rows are filtered as they are read.
COMPACT_AFTER = timedelta(days=30)
_LINEAGE = ("_batch_id", "_source_row")
# Partition files carry min/max statistics (staged files do not), in row groups small enough
# that a build of one USCC range skips most of them (docs/scaling.md).
STATE_PARQUET: dict[str, Any] = {"statistics": True, "row_group_size": 64 * 1024}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class BatchRef(_Model):
    """A batch whose rows a partition holds, with what places it in ledger order."""

    batch_id: str
    landed_at: datetime
    source_key: str

    @property
    def order(self) -> tuple[datetime, str, str]:
        return ledger.batch_order(self.landed_at, self.source_key, self.batch_id)


class Partition(_Model):
    """The rows in effect of one dataset and region, and what they were built from."""

    dataset: str
    region: str
    key: str
    rows: int
    # Batches whose rows are in the file, in ledger order.
    batches: list[BatchRef]
    # Every batch whose rows may count (InEffect.all_batches), for the manifest's inputs.
    input_batches: list[str]
    # The latest publishable batch absorbed (repeats included), and the sha256 and mode of the
    # latest one kept (a batch repeating it changes nothing).
    last_order: tuple[datetime, str, str]
    last_kept: tuple[str, str]
    # Rows dated on or before this have been dropped from the file (windowed datasets).
    cutoff: date | None = None


class StatePointer(_Model):
    """``state/current.json``: the state in force."""

    format: int = STATE_FORMAT
    generation: str
    written_at: datetime
    as_of: date
    # The newest journal entry read, and the keys read within JOURNAL_LAG of it.
    journal_mark: datetime | None
    journal_read: list[str]
    partitions: list[Partition]

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode("utf-8")


@dataclass(frozen=True)
class StateUpdate:
    """What a publication read: the state it builds from, and what changed."""

    pointer: StatePointer
    rebuilt: tuple[str, ...]
    advanced: tuple[str, ...]
    committed: bool

    @property
    def changed(self) -> bool:
        return bool(self.rebuilt or self.advanced)


def _name(dataset: str, region: str) -> str:
    return f"{dataset}/{region}"


def read_pointer(storage: Storage) -> tuple[StatePointer, str] | None:
    """The state in force and its etag, or None when there is none (or of another format)."""
    try:
        etag = storage.head(STATE_POINTER_KEY).etag
        raw = storage.read_bytes(STATE_POINTER_KEY)
    except NotFound:
        return None
    pointer = StatePointer.model_validate_json(raw)
    if pointer.format != STATE_FORMAT:
        log.warning("state format %s is not %s: rebuilding the state", pointer.format,
                    STATE_FORMAT)
        return None
    return pointer, etag


def _pointer_etag(storage: Storage) -> str | None:
    """The etag of a pointer :func:`read_pointer` would not read (another format), if any."""
    try:
        return storage.head(STATE_POINTER_KEY).etag
    except NotFound:
        return None


# --- pure: which rows a partition keeps ----------------------------------------------------------


def _cutoff(as_of: date, window_days: int) -> date:
    """Rows dated on or before this are outside every window of ``as_of`` or later."""
    return as_of - timedelta(days=window_days)


def _in_working_set(dataset: str, cutoff: date) -> pl.Expr:
    column = WINDOW_COLUMNS.get(dataset)
    if column is None:
        return pl.lit(True)
    return pl.col(column).is_null() | (pl.col(column) > cutoff)


def _compacted(rows: pl.LazyFrame, dataset: str, key: Sequence[str], cutoff: date
               ) -> pl.LazyFrame:
    """The latest row per natural key, without the rows that left the window, without the
    order column, sorted by USCC then key: the file is the same whichever way it was reached,
    and its row groups' USCC statistics let a build of one USCC range skip the others."""
    return (latest_rows(rows, key)
            .filter(_in_working_set(dataset, cutoff))
            .select(list(STAGED_COLUMNS[dataset]))
            .sort(["uscc", *key, *_LINEAGE], nulls_last=True))


def _ranked(frame: pl.LazyFrame, ranks: Mapping[str, int]) -> pl.LazyFrame:
    return frame.with_columns(
        pl.col("_batch_id").replace_strict(dict(ranks), return_dtype=pl.Int64)
        .alias(ORDER_COLUMN))


# --- one partition ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    storage: Storage
    natural_keys: Mapping[str, Sequence[str]]
    cutoff: date
    generation: str


def _refs(records: Iterable[BatchRecord]) -> list[BatchRef]:
    return [BatchRef(batch_id=r.batch_id, landed_at=r.landed_at, source_key=r.source_key)
            for r in records]


def _write(ctx: _Context, dataset: str, region: str, rows: pl.LazyFrame,
           refs: Mapping[str, BatchRef], **fields: Any) -> Partition:
    frame = ctx.storage.retried_read(STAGED_PREFIX, rows.collect)
    key = state_part_key(ctx.generation, dataset, region)
    ctx.storage.write_parquet(frame, key, **STATE_PARQUET)
    present = set(frame.get_column("_batch_id").unique().to_list())
    batches = sorted((refs[b] for b in present), key=lambda ref: ref.order)
    return Partition(dataset=dataset, region=region, key=key, rows=frame.height,
                     batches=batches, **fields)


def _rebuilt(ctx: _Context, effect: InEffect, repeats: Sequence[BatchRecord]) -> Partition:
    """A partition built from every batch in effect (``repeats``: every publishable batch of
    it, in ledger order, repeats included)."""
    every = effect.all_batches()
    ranks = {r.batch_id: i for i, r in enumerate(sorted(every, key=lambda r: r.order))}
    frames = rows_in_effect(ctx.storage, effect, ranks, ctx.natural_keys)
    key = ctx.natural_keys[effect.dataset]
    rows = _compacted(pl.concat(frames, how="vertical"), effect.dataset, key, ctx.cutoff)
    last = effect.batches[-1]
    return _write(ctx, effect.dataset, effect.region, rows,
                  {ref.batch_id: ref for ref in _refs(every)},
                  input_batches=[r.batch_id for r in every],
                  last_order=repeats[-1].order, last_kept=(last.sha256, last.mode),
                  cutoff=ctx.cutoff if effect.dataset in WINDOW_COLUMNS else None)


def _scan(storage: Storage, part: Partition) -> pl.LazyFrame:
    return storage.scan_parquet(part.key, hive_partitioning=False)


def _advanced(ctx: _Context, part: Partition, new: Sequence[BatchRecord]) -> Partition:
    """``part`` brought forward by ``new`` batches (publishable, in ledger order, every one
    after ``part.last_order``), as :func:`registry.ledger.in_effect` would take them: a repeat
    of the batch kept before it changes nothing; a replace batch starts over, keeping the
    previous rows of the filings it quarantined."""
    refs = {ref.batch_id: ref for ref in part.batches}
    ranks = {ref.batch_id: i for i, ref in enumerate(part.batches)}
    rows = [_ranked(_scan(ctx.storage, part), ranks)]
    inputs = list(part.input_batches)
    last_kept = part.last_kept
    natural_key = ctx.natural_keys[part.dataset]
    for record in new:
        if (record.sha256, record.mode) == last_kept:
            continue
        last_kept = (record.sha256, record.mode)
        ranks[record.batch_id] = len(ranks)
        refs[record.batch_id] = _refs([record])[0]
        inputs.append(record.batch_id)
        staged = _ranked(_staged(ctx.storage, record), ranks)
        if record.mode == "replace":
            if record.quarantined:
                rows = [kept_rows(ctx.storage, record, natural_key,
                                  pl.concat(rows, how="vertical"))]
            else:
                rows = []
        rows.append(staged)
    compacted = _compacted(pl.concat(rows, how="vertical"), part.dataset, natural_key,
                           ctx.cutoff)
    return _write(ctx, part.dataset, part.region, compacted, refs,
                  input_batches=inputs,
                  last_order=new[-1].order if new else part.last_order, last_kept=last_kept,
                  cutoff=ctx.cutoff if part.dataset in WINDOW_COLUMNS else None)


def _staged(storage: Storage, record: BatchRecord) -> pl.LazyFrame:
    return staged_batch(storage, record, 0).drop(ORDER_COLUMN)


# --- the whole state ---------------------------------------------------------------------------


def _publishable_of(storage: Storage, dataset: str, region: str
                    ) -> tuple[InEffect | None, list[BatchRecord]]:
    records = ledger.batch_records(storage, dataset=dataset, region=region)
    publishable = ledger.publishable(records, ledger.released_ids(storage))
    effects = ledger.in_effect(publishable)
    return (effects[0] if effects else None), publishable


def _new_publishable(storage: Storage, entries: Sequence[tuple[str, ledger.JournalEntry]]
                     ) -> tuple[dict[tuple[str, str], list[BatchRecord]], set[tuple[str, str]],
                                set[str]]:
    """From new journal entries: the publishable batches per dataset and region, the
    partitions a release touches (rebuilt: a release may make earlier batches count), and the
    keys of entries whose record is not there yet (read again next time)."""
    found: dict[tuple[str, str], dict[str, BatchRecord]] = {}
    released: set[tuple[str, str]] = set()
    pending: set[str] = set()
    for key, entry in entries:
        where = (entry.dataset, entry.region)
        record = ledger.read_batch_record(storage, entry.dataset, entry.region, entry.batch_id)
        if record is None:
            pending.add(key)
            continue
        if entry.kind == "release":
            released.add(where)
            continue
        if record.status == "released" or _released(storage, record):
            found.setdefault(where, {})[record.batch_id] = record
    return ({where: sorted(records.values(), key=lambda r: r.order)
             for where, records in found.items()}, released, pending)


def _released(storage: Storage, record: BatchRecord) -> bool:
    return bool(ledger.releases_of(storage, record))


def _everything(storage: Storage) -> dict[tuple[str, str], tuple[InEffect, list[BatchRecord]]]:
    publishable = ledger.publishable_batches(storage)
    by_partition: dict[tuple[str, str], list[BatchRecord]] = {}
    for record in publishable:
        by_partition.setdefault((record.dataset, record.region), []).append(record)
    return {(effect.dataset, effect.region): (effect,
                                              by_partition[(effect.dataset, effect.region)])
            for effect in ledger.in_effect(publishable)}


def refresh_state(storage: Storage, settings: Settings, natural_keys: Mapping[str, Sequence[str]],
                  window_days: int, as_of: date, *, full: bool = False) -> StateUpdate:
    """Bring the state forward to what the ledger holds now (rebuild it whole when ``full``
    or when there is none) and commit it; returns the state to build from.

    When another publisher moved the pointer first, the state computed here is still right
    for what it read, and is returned uncommitted."""
    now = datetime.now(UTC)
    generation = f"{ledger.journal_stamp(now)}-{secrets.token_hex(4)}"
    ctx = _Context(storage, natural_keys, _cutoff(as_of, window_days), generation)
    current = read_pointer(storage)
    found = None if full else current
    # The journal is listed before anything else is read: whatever is committed after this
    # listing is read next time.
    since = found[0].journal_mark - JOURNAL_LAG if found and found[0].journal_mark else None
    entries = ledger.journal_since(storage, since if found else None)
    # A full rebuild still swaps the pointer it replaces.
    etag: str | None = current[1] if current else _pointer_etag(storage)
    if found is None:
        parts = _rebuild_all(ctx)
        rebuilt = [_name(p.dataset, p.region) for p in parts]
        advanced: list[str] = []
        pending: set[str] = set()
    else:
        pointer, etag = found
        new = [(k, e) for k, e in entries if k not in set(pointer.journal_read)]
        parts, rebuilt, advanced, pending = _brought_forward(ctx, pointer, new)
    marks = [e.written_at for k, e in entries if k not in pending]
    mark = max(marks, default=found[0].journal_mark if found else None)
    read = sorted(k for k, e in entries
                  if k not in pending and mark is not None and e.written_at >= mark - JOURNAL_LAG)
    if found is not None and not rebuilt and not advanced and read == found[0].journal_read:
        return StateUpdate(found[0], (), (), committed=False)
    pointer = StatePointer(generation=generation, written_at=now, as_of=as_of,
                           journal_mark=mark, journal_read=read,
                           partitions=sorted(parts, key=lambda p: (p.dataset, p.region)))
    crash_point(settings, "after_state_files", "publisher")
    committed = _commit(storage, pointer, etag)
    crash_point(settings, "after_state_pointer", "publisher")
    return StateUpdate(pointer, tuple(rebuilt), tuple(advanced), committed)


def _rebuild_all(ctx: _Context) -> list[Partition]:
    return [_rebuilt(ctx, effect, publishable)
            for effect, publishable in _everything(ctx.storage).values()]


def _brought_forward(ctx: _Context, pointer: StatePointer,
                     entries: Sequence[tuple[str, ledger.JournalEntry]]
                     ) -> tuple[list[Partition], list[str], list[str], set[str]]:
    new, released, pending = _new_publishable(ctx.storage, entries)
    current = {(p.dataset, p.region): p for p in pointer.partitions}
    parts: list[Partition] = []
    rebuilt: list[str] = []
    advanced: list[str] = []
    for where in sorted(set(current) | set(new) | released):
        part = current.get(where)
        records = new.get(where, [])
        stale_window = (part is not None and part.cutoff is not None
                        and ctx.cutoff < part.cutoff)
        if part is None or where in released or stale_window or (
                records and records[0].order <= part.last_order):
            effect, publishable = _publishable_of(ctx.storage, *where)
            if effect is not None:
                parts.append(_rebuilt(ctx, effect, publishable))
                rebuilt.append(_name(*where))
            elif part is not None:
                rebuilt.append(_name(*where))  # nothing counts any more
            continue
        if records:
            parts.append(_advanced(ctx, part, records))
            advanced.append(_name(*where))
        elif (part.cutoff is not None and ctx.cutoff - part.cutoff >= COMPACT_AFTER):
            parts.append(_advanced(ctx, part, []))
            advanced.append(_name(*where))
        else:
            parts.append(part)
    return parts, rebuilt, advanced, pending


def _commit(storage: Storage, pointer: StatePointer, etag: str | None) -> bool:
    try:
        if etag is None:
            storage.put_if_absent(STATE_POINTER_KEY, pointer.to_json_bytes())
        else:
            storage.replace_if_match(STATE_POINTER_KEY, pointer.to_json_bytes(), etag)
    except (AlreadyExists, PreconditionFailed):
        log.warning("another publisher moved the state first; this publication builds from "
                    "its own reading, uncommitted")
        return False
    return True


# --- reading the state for the build -----------------------------------------------------------


@dataclass(frozen=True)
class UsccRange:
    """The USCCs from ``start`` (included) to ``end`` (excluded); None leaves that side open.
    Contiguous ranges cover every code, whichever table holds it."""

    start: str | None = None
    end: str | None = None

    def holds(self, column: str = "uscc") -> pl.Expr:
        code = pl.col(column)
        inside = pl.lit(True)
        if self.start is not None:
            inside = inside & (code >= pl.lit(self.start))
        if self.end is not None:
            inside = inside & (code < pl.lit(self.end))
        return inside


def uscc_ranges(storage: Storage, pointer: StatePointer, rows_per_range: int
                ) -> list[UsccRange]:
    """Contiguous USCC ranges, from the first code to the last, each holding about
    ``rows_per_range`` merchant filings of the state (one open range when they all fit).
    Reads the filings' USCC column only when there is more than one range."""
    parts = [part for part in pointer.partitions if part.dataset == "merchants"]
    filings = sum(part.rows for part in parts)
    count = -(-filings // rows_per_range)
    if count <= 1:
        return [UsccRange()]
    codes = (pl.concat([_scan(storage, part).select("uscc") for part in parts])
             .drop_nulls().sort("uscc").collect(engine="streaming").get_column("uscc"))
    # A boundary is the first code of a range; a code filed twice does not straddle two.
    starts = sorted({codes[len(codes) * i // count] for i in range(1, count)})
    bounds = [None, *starts, None]
    return [UsccRange(a, b) for a, b in pairwise(bounds)]


def state_inputs(storage: Storage, pointer: StatePointer, cutoff: date, *,
                 uscc_range: UsccRange | None = None) -> StagedInputs:
    """The build's inputs from the state: every partition's rows in the working set, each
    labelled with its batch's rank in ledger order across all partitions.

    With ``uscc_range``, only the rows of those merchants: everything the merchants table says
    of a merchant comes from rows with its USCC but its gift score, which comes from its
    products, built from every evaluation (their rank within a category needs every product,
    and a product's merchant is the one its latest evaluation names: docs/scaling.md). The
    state's files are sorted by USCC with statistics, so a range reads few of their row
    groups."""
    ranked = sorted({ref.order for part in pointer.partitions for ref in part.batches})
    rank = {order[2]: i for i, order in enumerate(ranked)}
    frames: dict[str, list[pl.LazyFrame]] = {dataset: [] for dataset in DATASETS}
    for part in pointer.partitions:
        rows = _scan(storage, part).filter(_in_working_set(part.dataset, cutoff))
        if uscc_range is not None:
            rows = rows.filter(uscc_range.holds())
        frames[part.dataset].append(_ranked(rows, rank))
    empty = {ORDER_COLUMN: pl.Int64}
    # Each partition holds one row per natural key, and every natural key names its region.
    return StagedInputs(**{
        dataset: pl.concat(parts, how="vertical") if parts
        else pl.LazyFrame(schema={**STAGED_COLUMNS[dataset], **empty})
        for dataset, parts in frames.items()
    }, current=True)


def nothing_new(storage: Storage, pointer: StatePointer) -> bool:
    """Whether the journal holds no entry ``pointer`` has not read (one listing)."""
    since = pointer.journal_mark - JOURNAL_LAG if pointer.journal_mark else None
    read = set(pointer.journal_read)
    return all(key in read for key, _ in ledger.journal_since(storage, since))


def input_batches(pointer: StatePointer) -> list[str]:
    return sorted({b for part in pointer.partitions for b in part.input_batches})


def state_keys_in_use(storage: Storage) -> set[str]:
    """Keys under ``state/`` that the pointer in force names (the pointer included)."""
    found = read_pointer(storage)
    if found is None:
        return {STATE_POINTER_KEY}
    return {STATE_POINTER_KEY, *(part.key for part in found[0].partitions)}


__all__ = [
    "JOURNAL_LAG",
    "STATE_PREFIX",
    "Partition",
    "StatePointer",
    "StateUpdate",
    "UsccRange",
    "input_batches",
    "nothing_new",
    "read_pointer",
    "refresh_state",
    "state_inputs",
    "state_keys_in_use",
    "uscc_ranges",
]
