"""Reading published snapshots: pointer -> manifest -> files, with every checksum verified.

The public entry point is :func:`open_snapshot`. It checks the manifest against the pointer
(or log) and every file against the manifest, then returns polars LazyFrames::

    import registry
    snap = registry.open_snapshot()                        # latest, at REGISTRY_STORAGE_URI
    snap = registry.open_snapshot("s3://bucket/prod")      # latest, at a given root
    snap = registry.open_snapshot(storage, "20261130T020000123456Z-1a2b3c4d")   # by id
    snap = registry.open_snapshot(storage, as_of=date(2026, 6, 30))       # by as_of
    trusted = snap.merchants.filter(pl.col("trusted")).collect()
    row = snap.merchant("91310000MA1FL8XQ30")          # one merchant, or None: unlisted
    delta = snap.changes_since(last_seen_id)              # catch up over missed snapshots

Other libraries read the same verified files, through ``snap.uri(table)`` or the frames::

    pandas.read_parquet(snap.uri("merchants"))             # or .collect().to_pandas()
    pyarrow.dataset.dataset(snap.uri("merchants"), format="parquet")
    duckdb.sql(f"SELECT grade, count(*) FROM read_parquet('{snap.uri('merchants')}') GROUP BY 1")

On S3, pandas needs s3fs and DuckDB its httpfs extension with the same credentials; the
polars frames (``.collect().to_pandas()``, ``.to_arrow()``) need nothing more.

The JSON formats of the manifest, the commit log and the ``latest.json`` pointer, and the
errors raised here, are defined in :mod:`registry.snapshot.formats`; this module re-exports
them.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import polars as pl

from registry.snapshot.delta import CHANGE_SCHEMA, merchant_changes
from registry.snapshot.formats import (
    MANIFEST_FORMAT,
    ContractEntry,
    FileEntry,
    LatestPointer,
    LogEntry,
    Manifest,
    ScoreModelRef,
    SnapshotError,
    SnapshotIntegrityError,
    sha256_hex,
)
from registry.storage import NotFound, ObjectDigest, Storage, open_storage_from_uri
from registry.storage.layout import LATEST_KEY, LOG_PREFIX, log_key, manifest_key, snapshot_prefix


@dataclass(frozen=True)
class Snapshot:
    """An opened snapshot. Tables are polars LazyFrames over the storage location itself, so
    filters and column selections are pushed down to the Parquet reader."""

    storage: Storage
    manifest: Manifest

    @property
    def snapshot_id(self) -> str:
        return self.manifest.snapshot_id

    @property
    def as_of(self) -> date:
        return self.manifest.as_of

    def key(self, table: str) -> str:
        return snapshot_prefix(self.snapshot_id) + self.manifest.file(table).path

    def uri(self, table: str) -> str:
        """Where another reader (pandas, pyarrow, DuckDB, Spark) can open ``table``."""
        return self.storage.uri_for(self.key(table))

    def contract(self, table: str) -> str:
        """The ODCS data contract (YAML) of ``table`` that this snapshot carries: its columns'
        types, meanings in Chinese and English, enums, key and quality rules."""
        entry = self.manifest.data_contract(table)
        return self.storage.read_bytes(snapshot_prefix(self.snapshot_id) + entry.path).decode(
            "utf-8")

    def scan(self, table: str) -> pl.LazyFrame:
        return self.storage.scan_parquet(self.key(table))

    @property
    def merchants(self) -> pl.LazyFrame:
        return self.scan("merchants")

    @property
    def products(self) -> pl.LazyFrame:
        return self.scan("products")

    @property
    def changes(self) -> pl.LazyFrame:
        return self.scan("changes")

    @property
    def complaints_summary(self) -> pl.LazyFrame:
        """The joint complaint analysis: per region, category and month. Raises
        :class:`SnapshotError` for a snapshot published before the table existed."""
        try:
            return self.scan("complaints_summary")
        except SnapshotError as err:
            raise SnapshotError(f"{err} (published before the joint complaint analysis "
                                "existed)") from None

    def merchant(self, uscc: str) -> dict[str, Any] | None:
        """One merchant's row of the merchants table as a dict (column -> value), or None when
        ``uscc`` is not in the registry (unlisted). The code is matched after NFKC, trimming
        and upper-casing, so a full-width or lower-case code finds its merchant.

        A point lookup: the publisher writes the table sorted by USCC, in row groups with
        min/max statistics (docs/architecture.md §11.4), so the filter reads the Parquet footer
        and the one row group whose USCC range holds the code, not the table."""
        code = unicodedata.normalize("NFKC", uscc).strip().upper()
        wanted = self.merchants.filter(pl.col("uscc") == code)
        rows = self.storage.retried_read(self.key("merchants"), wanted.collect).to_dicts()
        return rows[0] if rows else None

    def changes_since(self, since: str | date | datetime) -> pl.DataFrame:
        """What changed from an earlier snapshot to this one: the columns of the changes table
        (one row per merchant ``added``, ``removed`` or ``updated``, sorted by USCC).

        ``since`` is a snapshot id (the one a consumer last read) or an ``as_of`` (the
        snapshot in effect then, as ``open_snapshot(as_of=...)`` picks it). However many
        snapshots were published in between, the answer is one net delta
        (:func:`registry.snapshot.delta.merchant_changes`, the function the publisher writes
        each snapshot's changes with): a merchant added and removed in between does not
        appear, and ``fields_changed`` lists every column that differs between the two.

        Cost: it opens and verifies the earlier snapshot (reads and hashes every file of it,
        as :func:`open_snapshot` does), then reads both merchants tables in full, into
        memory: twice the table's size, whatever the size of the delta. To follow every
        snapshot, reading each one's ``changes`` table is cheaper.

        Raises :class:`SnapshotError` when ``since`` names no committed snapshot (or no
        snapshot was in effect on that as_of), when gc has removed that snapshot, or when it
        was committed after this one; :class:`SnapshotIntegrityError` when it does not verify.
        """
        earlier = _earlier_snapshot(self, since)
        if earlier is None:
            return pl.DataFrame(schema=CHANGE_SCHEMA)
        before = self.storage.retried_read(earlier.key("merchants"), earlier.merchants.collect)
        after = self.storage.retried_read(self.key("merchants"), self.merchants.collect)
        return merchant_changes(before, after)


def read_latest(storage: Storage) -> tuple[LatestPointer, str] | None:
    """The latest pointer and its etag (for compare-and-swap), or None before any publish."""
    try:
        info = storage.head(LATEST_KEY)
        data = storage.read_bytes(LATEST_KEY)
    except NotFound:
        return None
    return LatestPointer.model_validate_json(data), info.etag


def read_log_entry(storage: Storage, seq: int) -> LogEntry | None:
    """The log entry at ``seq``, or None when there is none (yet)."""
    try:
        return LogEntry.model_validate_json(storage.read_bytes(log_key(seq)))
    except NotFound:
        return None


def read_log(storage: Storage) -> list[LogEntry]:
    """Every commit-log entry, in sequence order."""
    entries = [
        LogEntry.model_validate_json(storage.read_bytes(info.key))
        for info in storage.list(LOG_PREFIX)
        if info.key.endswith(".json")
    ]
    return sorted(entries, key=lambda e: e.seq)


def read_manifest(storage: Storage, snapshot_id: str, expected_sha256: str | None = None
                  ) -> Manifest:
    """The snapshot's manifest. Raises :class:`SnapshotError` when it is missing and
    :class:`SnapshotIntegrityError` when it differs from ``expected_sha256``."""
    try:
        data = storage.read_bytes(manifest_key(snapshot_id))
    except NotFound:
        raise SnapshotError(f"snapshot {snapshot_id}: no manifest (never committed, or removed)"
                            ) from None
    if expected_sha256 is not None and sha256_hex(data) != expected_sha256:
        raise SnapshotIntegrityError(
            snapshot_id, [f"_manifest.json sha256 is {sha256_hex(data)}, expected "
                          f"{expected_sha256}"]
        )
    manifest = Manifest.model_validate_json(data)
    if manifest.snapshot_id != snapshot_id:
        raise SnapshotIntegrityError(
            snapshot_id, [f"_manifest.json describes snapshot {manifest.snapshot_id}"]
        )
    return manifest


def file_problems(storage: Storage, manifest: Manifest) -> list[str]:
    """Every way the snapshot's files differ from the manifest (empty when they all verify):
    missing files, sizes, sha256, and row counts read from the Parquet footers; and the same
    for the data contracts it carries. Each file is read through once as a stream
    (:meth:`Storage.digest`), so memory holds a chunk and a footer, however large the table."""
    problems: list[str] = []
    prefix = snapshot_prefix(manifest.snapshot_id)
    for entry in manifest.files:
        digest = _verified_digest(storage, prefix, entry, problems)
        if digest is None:
            continue
        rows = _footer_rows(digest.tail)
        if rows is None:  # a footer longer than the tail kept: read it on its own
            key = prefix + entry.path
            rows = storage.retried_read(key, storage.scan_parquet(key).select(pl.len()).collect
                                        ).item()
        if rows != entry.rows:
            problems.append(f"{entry.path} has {rows} rows, expected {entry.rows}")
    for contract in manifest.data_contracts:
        _verified_digest(storage, prefix, contract, problems)
    return problems


# The end of a data file kept while it is hashed, to count its rows from the Parquet footer:
# the footer of a 10M-merchant table is under 2 MB (docs/benchmarks.md, the lookups).
FOOTER_TAIL_BYTES = 4 << 20
_PARQUET_MAGIC = b"PAR1"


def _footer_rows(tail: bytes) -> int | None:
    """The row count in the Parquet footer at the end of ``tail`` (a file's last bytes: the
    file metadata, its length in four bytes, ``PAR1``), or None when ``tail`` does not hold
    all of it."""
    if len(tail) < 8 or tail[-4:] != _PARQUET_MAGIC:
        return None
    length = int.from_bytes(tail[-8:-4], "little")
    if length + 8 > len(tail):
        return None
    # The footer alone, framed as a file: counting rows reads nothing but the file metadata.
    footer = _PARQUET_MAGIC + tail[-8 - length:]
    return pl.scan_parquet(io.BytesIO(footer)).select(pl.len()).collect().item()


def _verified_digest(storage: Storage, prefix: str, entry: FileEntry | ContractEntry,
                     problems: list[str]) -> ObjectDigest | None:
    """The stored ``entry``'s digest (with a data file's footer), or None when it is missing
    or its sha256 differs; each difference from the manifest is added to ``problems``."""
    try:
        digest = storage.digest(prefix + entry.path, tail_bytes=(
            FOOTER_TAIL_BYTES if isinstance(entry, FileEntry) else 0))
    except NotFound:
        problems.append(f"{entry.path} is missing")
        return None
    if digest.size != entry.bytes:
        problems.append(f"{entry.path} has {digest.size} bytes, expected {entry.bytes}")
    if digest.sha256 != entry.sha256:
        problems.append(f"{entry.path} sha256 is {digest.sha256}, expected {entry.sha256}")
        return None
    return digest


def _storage_of(storage: Storage | str | None) -> Storage:
    if isinstance(storage, Storage):
        return storage
    return open_storage_from_uri(storage)


def withdrawn_snapshots(log: list[LogEntry]) -> set[str]:
    """Snapshots a rollback moved latest away from (and no later rollback returned to)."""
    withdrawn: set[str] = set()
    for entry in log:
        if entry.action == "rollback":
            if entry.previous_snapshot:
                withdrawn.add(entry.previous_snapshot)
            withdrawn.discard(entry.snapshot_id)
    return withdrawn


def _snapshot_for_as_of(
    storage: Storage, as_of: date | datetime, *, log: list[LogEntry] | None = None,
    skip_removed: bool = True,
) -> LogEntry:
    """The log entry of the latest committed snapshot whose as_of is on or before ``as_of``.
    Snapshots that a rollback moved away from are skipped: they were withdrawn. So are those
    gc removed, unless ``skip_removed`` is false (then the entry may name a removed one)."""
    when = as_of.date() if isinstance(as_of, datetime) else as_of
    log = read_log(storage) if log is None else log
    withdrawn = withdrawn_snapshots(log)
    candidates = [
        e for e in log
        if e.action == "publish" and e.snapshot_id not in withdrawn and e.as_of <= when
        and (not skip_removed or storage.exists(e.manifest))
    ]
    if not candidates:
        raise SnapshotError(f"no published snapshot has as_of on or before {when.isoformat()}")
    return max(candidates, key=lambda e: (e.as_of, e.seq))


def _earlier_snapshot(snap: Snapshot, since: str | date | datetime) -> Snapshot | None:
    """The snapshot ``since`` names (an id, or an as_of), opened and verified against its log
    entry, for :meth:`Snapshot.changes_since`; None when it is ``snap`` itself."""
    storage = snap.storage
    log = read_log(storage)
    published = {e.snapshot_id: e for e in log if e.action == "publish"}
    this = published.get(snap.snapshot_id)
    if this is None:
        raise SnapshotError(f"snapshot {snap.snapshot_id} was never committed to the log")
    if isinstance(since, str):
        entry = published.get(since)
        if entry is None:
            raise SnapshotError(f"unknown snapshot {since}: it was never committed to the log "
                                f"of {storage.root_uri}")
    else:
        entry = _snapshot_for_as_of(storage, since, log=log, skip_removed=False)
    if entry.snapshot_id == snap.snapshot_id:
        return None
    if entry.seq > this.seq:
        withdrawn = " (withdrawn by a rollback)" if entry.snapshot_id in withdrawn_snapshots(
            log) else ""
        raise SnapshotError(
            f"snapshot {entry.snapshot_id}{withdrawn} is later than {snap.snapshot_id} (log "
            f"seq {entry.seq} > {this.seq}): changes run from an earlier snapshot to a later "
            "one; read this one in full")
    if not storage.exists(entry.manifest):
        raise SnapshotError(
            f"snapshot {entry.snapshot_id} was removed by gc (past the retention of committed "
            f"snapshots): no delta from it to {snap.snapshot_id}; read this one in full")
    manifest = read_manifest(storage, entry.snapshot_id, entry.manifest_sha256)
    problems = file_problems(storage, manifest)
    if problems:
        raise SnapshotIntegrityError(entry.snapshot_id, problems)
    return Snapshot(storage=storage, manifest=manifest)


def open_snapshot(
    storage: Storage | str | None = None,
    snapshot_id: str | None = None,
    *,
    as_of: date | datetime | None = None,
    verify: bool = True,
) -> Snapshot:
    """Open a published snapshot and (by default) verify every checksum first.

    ``storage`` is a :class:`~registry.storage.Storage`, a root URI, or None for
    ``REGISTRY_STORAGE_URI``. With neither ``snapshot_id`` nor ``as_of``, opens the latest
    snapshot; with ``as_of``, the latest snapshot whose as_of date is on or before it.

    Raises :class:`SnapshotError` when there is no such snapshot, and
    :class:`SnapshotIntegrityError` when a file (or the manifest) does not match its checksum.
    """
    if snapshot_id is not None and as_of is not None:
        raise ValueError("give a snapshot id or an as_of time, not both")
    storage = _storage_of(storage)
    expected_sha: str | None = None
    if snapshot_id is None and as_of is None:
        latest = read_latest(storage)
        if latest is None:
            raise SnapshotError(f"{storage.root_uri}: nothing has been published yet")
        snapshot_id, expected_sha = latest[0].snapshot_id, latest[0].manifest_sha256
    elif as_of is not None:
        entry = _snapshot_for_as_of(storage, as_of)
        snapshot_id, expected_sha = entry.snapshot_id, entry.manifest_sha256
    assert snapshot_id is not None
    manifest = read_manifest(storage, snapshot_id, expected_sha)
    if verify:
        problems = file_problems(storage, manifest)
        if problems:
            raise SnapshotIntegrityError(snapshot_id, problems)
    return Snapshot(storage=storage, manifest=manifest)


@dataclass(frozen=True)
class SnapshotInfo:
    """A committed snapshot as the log knows it."""

    snapshot_id: str
    seq: int
    as_of: date
    committed_at: datetime
    is_latest: bool
    withdrawn: bool
    present: bool


def list_snapshots(storage: Storage) -> list[SnapshotInfo]:
    """Every snapshot the log committed, oldest first: whether it is latest, whether a rollback
    withdrew it, and whether its manifest is still present (gc removes old snapshots)."""
    log = read_log(storage)
    latest = read_latest(storage)
    latest_id = latest[0].snapshot_id if latest else None
    withdrawn = withdrawn_snapshots(log)
    return [
        SnapshotInfo(
            snapshot_id=e.snapshot_id,
            seq=e.seq,
            as_of=e.as_of,
            committed_at=e.committed_at,
            is_latest=e.snapshot_id == latest_id,
            withdrawn=e.snapshot_id in withdrawn,
            present=storage.exists(e.manifest),
        )
        for e in log
        if e.action == "publish"
    ]


def verify_snapshot(storage: Storage, snapshot_id: str | None = None) -> list[str]:
    """Every problem with a snapshot (latest by default): manifest checksum against the log or
    pointer, each file's size, sha256 and rows. An empty list means it verifies."""
    expected: str | None = None
    if snapshot_id is None:
        latest = read_latest(storage)
        if latest is None:
            return ["nothing has been published yet"]
        snapshot_id, expected = latest[0].snapshot_id, latest[0].manifest_sha256
    else:
        entries = [e for e in read_log(storage) if e.snapshot_id == snapshot_id]
        if not entries:
            return [f"snapshot {snapshot_id} was never committed to the log"]
        expected = entries[0].manifest_sha256
    try:
        manifest = read_manifest(storage, snapshot_id, expected)
    except SnapshotIntegrityError as err:
        return err.problems
    except SnapshotError as err:
        return [str(err)]
    return file_problems(storage, manifest)


__all__ = [
    "MANIFEST_FORMAT",
    "ContractEntry",
    "FileEntry",
    "LatestPointer",
    "LogEntry",
    "Manifest",
    "ScoreModelRef",
    "Snapshot",
    "SnapshotError",
    "SnapshotInfo",
    "SnapshotIntegrityError",
    "file_problems",
    "list_snapshots",
    "open_snapshot",
    "read_latest",
    "read_log",
    "read_log_entry",
    "read_manifest",
    "sha256_hex",
    "verify_snapshot",
    "withdrawn_snapshots",
]
