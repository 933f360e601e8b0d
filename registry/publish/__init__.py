"""Publication protocol (DESIGN.md §7): build the registry and publish it as an immutable,
verifiable snapshot; roll back; collect garbage.

Protocol, in order. A crash between any two steps leaves the previous snapshot fully readable:

1. write the data files under ``registry/snapshots/{id}/``, each create-if-absent;
2. write ``_manifest.json`` (per file: path, sha256, bytes, rows; versions; inputs), create-if-
   absent;
3. append ``registry/_log/{seq:020d}.json``, create-if-absent. **This is the commit point**, and
   the guard that keeps publication single-writer: of two publishers, one gets the sequence
   number and the other fails with :class:`ConcurrentPublish`;
4. move ``registry/latest.json`` to the new entry by compare-and-swap (create-if-absent the
   first time).

If a publisher dies between 3 and 4, the next publish, rollback or gc first moves latest forward
to the committed log head (:func:`recover_latest`). Snapshot folders that no log entry names
are orphans: ``registry gc`` removes them once they are older than the grace period.

``REGISTRY_CRASH_AT`` (tests only) kills the process with SIGKILL at one of
:data:`registry.config.crashpoints.PUBLISH_CRASH_STEPS`.
"""

from __future__ import annotations

import io
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl

from registry import __version__
from registry.build import (
    MERCHANT_COLUMNS,
    MERCHANTS_CONTRACT_VERSION,
    PRODUCTS_CONTRACT_VERSION,
    registry_tables,
    staged_inputs,
)
from registry.build.changes import CHANGES_CONTRACT_VERSION, merchant_changes, merchants_dated
from registry.build.scores import load_score_model
from registry.config.contracts import load_contracts
from registry.config.crashpoints import check_crash_setting, crash_point
from registry.config.pii import PATTERNS, masked
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.ingest.pipeline import remove_uncommitted_batches
from registry.ledger import batches_in_effect
from registry.progress import ProgressCallback
from registry.quality import SuiteResult, registry_results, suite_versions
from registry.report import write_report
from registry.snapshot.reader import (
    FileEntry,
    LatestPointer,
    LogEntry,
    Manifest,
    ScoreModelRef,
    file_problems,
    open_snapshot,
    read_latest,
    read_log,
    read_log_entry,
    read_manifest,
    sha256_hex,
)
from registry.storage import AlreadyExists, PreconditionFailed, Storage, probe_capabilities
from registry.storage.layout import (
    LATEST_KEY,
    SNAPSHOTS_PREFIX,
    log_key,
    manifest_key,
    report_prefix,
    snapshot_prefix,
)

log = logging.getLogger(__name__)

# Council staff work in Asia/Shanghai: "today" for a default as_of is their today.
COUNCIL_TIMEZONE = ZoneInfo("Asia/Shanghai")
TABLE_ORDER = ("merchants", "products", "changes")
# Build, PII check, data files, manifest, log entry, latest: what a progress bar counts.
PUBLISH_STAGES = 6
SNAPSHOT_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"
_SNAPSHOT_ID = re.compile(r"^[0-9]{8}T[0-9]{12}Z-[0-9a-f]{8}$")
REPORTS_PREFIX = "reports/"
# Identifiers the registry itself checks or generates, whose digit runs can mimic personal
# numbers: the format-checked organisation code, and batch ids (time stamps and hex hashes).
# The value scan leaves them out; every other string is scanned.
_NOT_PERSONAL = frozenset({"uscc", "source_batches"})


class PublishRefused(Exception):
    """Publication was refused before anything was written; latest is unchanged."""


class PIIRefused(PublishRefused):
    """The output contains a PII column or a value that looks like personal data."""

    def __init__(self, findings: list[PIIFinding]):
        self.findings = findings
        super().__init__(
            "refusing to publish personal data: "
            + "; ".join(f.describe() for f in findings)
        )


class RegistrySuiteFailed(PublishRefused):
    """The registry failed its Great Expectations suites (``expectations/registry_*.json``).
    Nothing was published; ``results`` holds every suite's outcome with zh/en reasons, and
    the Data Docs of the run are under ``reports/refused/{snapshot_id}/``."""

    def __init__(self, results: list[SuiteResult]):
        self.results = results
        failures = [f for r in results for f in r.failures]
        super().__init__(
            "refusing to publish a registry that fails its quality suite: "
            + "; ".join(f"[{f.code}] {f.message_en}" for f in failures)
        )


class ConcurrentPublish(Exception):
    """Another writer committed this log sequence first. Our snapshot folder is an orphan that
    ``registry gc`` removes; latest is whatever the other writer made it."""


@dataclass(frozen=True)
class PIIFinding:
    table: str
    column: str
    kind: str  # pii_column | mobile_number | resident_id
    count: int
    example: str | None = None  # masked

    def describe(self) -> str:
        where = f"{self.table}.{self.column}"
        if self.kind == "pii_column":
            return f"{where} is a PII column in the input contracts"
        return f"{where}: {self.count} value(s) look like a {self.kind} (e.g. {self.example})"


@dataclass(frozen=True)
class PublishResult:
    snapshot_id: str
    manifest_key: str
    seq: int
    as_of: date
    previous_snapshot: str | None
    rows: dict[str, int]
    trusted_by_grade: dict[str, int]
    changes: dict[str, int]
    # Key of the snapshot's HTML report; None when writing it failed (the snapshot stands).
    report: str | None = None


@dataclass
class GcReport:
    orphans_removed: list[str] = field(default_factory=list)
    expired_removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    objects_deleted: int = 0
    # Batches a crashed ingest worker staged but never committed (registry.ingest.pipeline).
    batches_removed: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# PII guard (pure)


def pii_findings(
    tables: Mapping[str, pl.DataFrame], pii_columns: Iterable[str]
) -> list[PIIFinding]:
    """Every PII column (by name, from the input contracts) and every string value that looks
    like a mainland mobile number or resident ID number (:mod:`registry.config.pii`), in every
    table.
    String and list-of-string columns are scanned; examples are masked."""
    pii = set(pii_columns)
    findings: list[PIIFinding] = []
    for table, frame in tables.items():
        for column, dtype in frame.schema.items():
            if column in pii:
                findings.append(PIIFinding(table, column, "pii_column", frame.height))
            if column in _NOT_PERSONAL:
                continue
            if dtype == pl.String:
                values = frame.get_column(column)
            elif dtype == pl.List(pl.String):
                values = frame.get_column(column).explode()
            else:
                continue
            values = values.drop_nulls()
            for kind, pattern in PATTERNS.items():
                hits = values.filter(values.str.contains(pattern))
                if hits.len():
                    example = pl.select(masked(pl.lit(hits.sort()[0]))).item()
                    findings.append(PIIFinding(table, column, kind, hits.len(), example))
    return findings


# ---------------------------------------------------------------------------------------------
# Building the tables (reads staged inputs and the previous snapshot)


@dataclass(frozen=True)
class BuiltSnapshot:
    tables: dict[str, pl.DataFrame]
    input_batches: list[str]


def snapshot_tables(
    storage: Storage, settings: Settings, as_of: date, previous: str | None
) -> BuiltSnapshot:
    """The three published tables for ``as_of``, from the publishable staged batches and the
    ``previous`` snapshot (verified) for the delta and the listing dates."""
    model = load_score_model(settings.config_dir, settings.score_model_version).model
    regions = load_regions(settings.config_dir)
    division_regions = {r.division_code: code for code, r in regions.regions.items()}
    effects = batches_in_effect(storage)
    built = registry_tables(staged_inputs(storage, effects), as_of, model, division_regions)
    # The reads of staged rows and of the previous snapshot happen at these collects.
    current = storage.retried_read("staged/", built.merchants.collect)
    before = None
    if previous:
        previous_merchants = open_snapshot(storage, previous).merchants
        before = storage.retried_read(snapshot_prefix(previous), previous_merchants.collect)
    changes = merchant_changes(before, current)
    merchants = merchants_dated(current, before, changes, as_of).select(MERCHANT_COLUMNS)
    products = storage.retried_read("staged/", built.products.collect)
    return BuiltSnapshot(
        tables={"merchants": merchants, "products": products, "changes": changes},
        input_batches=sorted({b.batch_id for e in effects for b in e.all_batches()}),
    )


def _parquet_bytes(frame: pl.DataFrame) -> bytes:
    # In memory, so the bytes hashed are the bytes written; no wall-clock value is inside.
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getvalue()


def _summary(tables: Mapping[str, pl.DataFrame]) -> dict[str, dict[str, int]]:
    merchants = tables["merchants"]
    trusted = merchants.filter(pl.col("trusted"))
    return {
        "rows": {name: frame.height for name, frame in tables.items()},
        "trusted_by_grade": dict(sorted(Counter(trusted.get_column("grade").to_list()).items())),
        "grades": dict(
            sorted(Counter(g or "none" for g in merchants.get_column("grade").to_list()).items())
        ),
        "changes": dict(sorted(Counter(tables["changes"].get_column("change").to_list()).items())),
    }


# ---------------------------------------------------------------------------------------------
# The protocol


def _snapshot_id(
    now: datetime, previous: str | None, files: list[FileEntry], as_of: date, seq: int
) -> str:
    """``{UTC time to the microsecond}Z-{hash}``: ids sort by publish time, and always after
    the previous snapshot's (a clock stepping back cannot reorder them). The hash names the
    content and its place in the log, so identical data published twice gets two ids."""
    stamp = now
    if previous is not None:
        before = datetime.strptime(previous.split("-", 1)[0], SNAPSHOT_TIME_FORMAT)
        stamp = max(stamp, before.replace(tzinfo=UTC) + timedelta(microseconds=1))
    identity = "|".join([*(f.sha256 for f in files), as_of.isoformat(), str(seq), previous or ""])
    return f"{stamp:{SNAPSHOT_TIME_FORMAT}}-{sha256_hex(identity.encode())[:8]}"


def _put_once(storage: Storage, key: str, data: bytes) -> None:
    """Create-if-absent; an object already holding exactly these bytes (a retried publish of
    identical content) is accepted, anything else is an error."""
    try:
        storage.put_if_absent(key, data)
    except AlreadyExists:
        if sha256_hex(storage.read_bytes(key)) != sha256_hex(data):
            raise ConcurrentPublish(f"{key} exists with different content") from None


def _pointer_for(entry: LogEntry, now: datetime) -> LatestPointer:
    return LatestPointer(
        seq=entry.seq,
        snapshot_id=entry.snapshot_id,
        manifest=entry.manifest,
        manifest_sha256=entry.manifest_sha256,
        as_of=entry.as_of,
        updated_at=now,
    )


def _move_latest(storage: Storage, entry: LogEntry) -> LatestPointer:
    """Point latest at ``entry`` by compare-and-swap, unless it already points at an entry at
    least as new (another process finished the move)."""
    for _ in range(10):
        current = read_latest(storage)
        if current is not None and current[0].seq >= entry.seq:
            return current[0]
        pointer = _pointer_for(entry, datetime.now(UTC))
        try:
            if current is None:
                storage.put_if_absent(LATEST_KEY, pointer.to_json_bytes())
            else:
                storage.replace_if_match(LATEST_KEY, pointer.to_json_bytes(), current[1])
            return pointer
        except (AlreadyExists, PreconditionFailed):
            continue  # someone moved it meanwhile: look again
    raise ConcurrentPublish(f"{LATEST_KEY} keeps changing; could not move it to seq {entry.seq}")


def recover_latest(storage: Storage) -> LatestPointer | None:
    """Move latest forward to the committed head of the log, if a writer died between appending
    its log entry and moving the pointer. Returns the (possibly moved) pointer."""
    current = read_latest(storage)
    seq = current[0].seq if current else 0
    head: LogEntry | None = None
    while (entry := read_log_entry(storage, seq + 1)) is not None:
        head, seq = entry, entry.seq
    if head is None:
        return current[0] if current else None
    log.warning("latest is behind the commit log: moving it forward to seq %d", head.seq)
    return _move_latest(storage, head)


def publish_snapshot(
    storage: Storage, settings: Settings, *, as_of: date | None = None,
    progress: ProgressCallback | None = None,
) -> PublishResult:
    """Build the registry from the publishable staged batches and publish it as a new snapshot.

    ``as_of`` defaults to today in Asia/Shanghai. The data files depend only on the staged
    inputs, ``as_of`` and the previous snapshot (for the delta and listing dates).

    Raises :class:`PIIRefused` (nothing written) when the output would carry personal data,
    :class:`RegistrySuiteFailed` (no snapshot file written; the gate's Data Docs are) when it
    fails the registry suites, :class:`ConcurrentPublish` when another writer committed
    first, and :class:`registry.storage.StoreLacksGuarantees` (nothing written) when the store
    does not enforce create-if-absent and compare-and-swap (a versioned Ceph RGW bucket).
    ``progress`` hears of each protocol stage as it starts.
    """
    step = progress or (lambda _description, _done, _total: None)
    check_crash_setting(settings)
    # Before anything is written (recovering latest included): the protocol is only safe on a
    # store that really enforces create-if-absent and compare-and-swap.
    probe_capabilities(storage).require()
    now = datetime.now(UTC)
    as_of = as_of or now.astimezone(COUNCIL_TIMEZONE).date()
    latest = recover_latest(storage)
    previous = latest.snapshot_id if latest else None
    seq = (latest.seq if latest else 0) + 1

    step("publish: building the registry", 0, PUBLISH_STAGES)
    built = snapshot_tables(storage, settings, as_of, previous)
    step("publish: checking for personal data", 1, PUBLISH_STAGES)
    contracts = load_contracts(settings.schemas_dir)
    pii_columns = {c for contract in contracts.values() for c in contract.pii_columns}
    findings = pii_findings(built.tables, pii_columns)
    if findings:
        raise PIIRefused(findings)

    payloads = {name: _parquet_bytes(built.tables[name]) for name in TABLE_ORDER}
    files = [
        FileEntry(
            path=f"{name}.parquet",
            sha256=sha256_hex(data),
            bytes=len(data),
            rows=built.tables[name].height,
        )
        for name, data in payloads.items()
    ]
    snapshot_id = _snapshot_id(now, previous, files, as_of, seq)
    prefix = snapshot_prefix(snapshot_id)
    # The registry gate, before anything of the snapshot is written.
    gate = registry_results(
        storage, settings, built.tables,
        load_score_model(settings.config_dir, settings.score_model_version).model, snapshot_id,
    )
    if not all(result.success for result in gate):
        raise RegistrySuiteFailed(gate)

    step("publish: writing data files", 2, PUBLISH_STAGES)
    for i, (name, data) in enumerate(payloads.items()):
        _put_once(storage, f"{prefix}{name}.parquet", data)
        if i == 0:
            crash_point(settings, "after_first_data_file", "publisher")
    crash_point(settings, "after_data_files", "publisher")

    model = load_score_model(settings.config_dir, settings.score_model_version)
    summary = _summary(built.tables)
    manifest = Manifest(
        snapshot_id=snapshot_id,
        as_of=as_of,
        published_at=now,
        previous_snapshot=previous,
        code_version=__version__,
        contract_versions={name: c.version for name, c in sorted(contracts.items())},
        output_contract_versions={
            "merchants": MERCHANTS_CONTRACT_VERSION,
            "products": PRODUCTS_CONTRACT_VERSION,
            "changes": CHANGES_CONTRACT_VERSION,
        },
        score_model=ScoreModelRef(version=model.model.version, sha256=model.sha256),
        suite_versions=suite_versions(settings),
        input_batches=built.input_batches,
        files=files,
        summary=summary,
    )
    manifest_bytes = manifest.to_json_bytes()
    step("publish: writing the manifest", 3, PUBLISH_STAGES)
    try:
        storage.put_if_absent(manifest_key(snapshot_id), manifest_bytes)
    except AlreadyExists:
        raise ConcurrentPublish(f"snapshot {snapshot_id} already has a manifest") from None
    crash_point(settings, "after_manifest", "publisher")

    entry = LogEntry(
        seq=seq,
        action="publish",
        snapshot_id=snapshot_id,
        manifest=manifest_key(snapshot_id),
        manifest_sha256=sha256_hex(manifest_bytes),
        as_of=as_of,
        previous_snapshot=previous,
        committed_at=datetime.now(UTC),
    )
    step("publish: committing to the log", 4, PUBLISH_STAGES)
    try:
        storage.put_if_absent(log_key(seq), entry.to_json_bytes())
    except AlreadyExists:
        raise ConcurrentPublish(
            f"log sequence {seq} was committed by another writer; snapshot {snapshot_id} is "
            "left uncommitted for gc"
        ) from None
    crash_point(settings, "after_log_entry", "publisher")

    step("publish: moving latest", 5, PUBLISH_STAGES)
    _move_latest(storage, entry)
    crash_point(settings, "after_latest", "publisher")
    step(f"publish: published {snapshot_id}", PUBLISH_STAGES, PUBLISH_STAGES)
    log.info("published snapshot %s (seq %d, as_of %s)", snapshot_id, seq, as_of)
    report: str | None = None
    try:
        report = write_report(storage, settings, snapshot_id, progress=progress)
    except Exception:
        # The snapshot is committed and readers already see it: a page that failed to render
        # must not undo that. `registry report ID` rebuilds it.
        log.exception(
            "snapshot %s is PUBLISHED, but its report was NOT written; rebuild it with "
            "`registry report %s`", snapshot_id, snapshot_id,
        )
    return PublishResult(
        snapshot_id=snapshot_id,
        manifest_key=manifest_key(snapshot_id),
        seq=seq,
        as_of=as_of,
        previous_snapshot=previous,
        rows=summary["rows"],
        trusted_by_grade=summary["trusted_by_grade"],
        changes=summary["changes"],
        report=report,
    )


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
    _move_latest(storage, entry)
    return entry


def _delete_snapshot(storage: Storage, snapshot_id: str, keys: list[str]) -> int:
    # The manifest goes first: a folder without one is plainly not a snapshot, even if this
    # process dies half-way through. Its report (and the gate's Data Docs in it) goes last.
    first = manifest_key(snapshot_id)
    ordered = sorted(keys, key=lambda k: k != first)
    ordered += [info.key for info in storage.list(report_prefix(snapshot_id))]
    for key in ordered:
        storage.delete(key)
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
    (:func:`registry.ingest.pipeline.remove_uncommitted_batches`). Latest and its predecessor
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
        if _SNAPSHOT_ID.match(snapshot_id) and snapshot_id not in committed_ids:
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
    report.batches_removed = remove_uncommitted_batches(storage, settings, cutoff=cutoff, now=now)
    return report


__all__ = [
    "ConcurrentPublish",
    "GcReport",
    "PIIFinding",
    "PIIRefused",
    "PublishRefused",
    "PublishResult",
    "RegistrySuiteFailed",
    "collect_garbage",
    "pii_findings",
    "publish_snapshot",
    "recover_latest",
    "rollback_snapshot",
    "snapshot_tables",
]
