"""The publication protocol (docs/architecture.md, publication protocol): build the registry and
publish it as an immutable, verifiable snapshot.

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
are orphans: ``registry gc`` removes them once they are older than the grace period
(:mod:`registry.publish.gc`).

``REGISTRY_CRASH_AT`` (tests only) kills the process with SIGKILL at one of
:data:`registry.config.crashpoints.PUBLISH_CRASH_STEPS`.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from registry import __version__
from registry.allocator import use_jemalloc
from registry.config.contracts import load_contracts
from registry.config.crashpoints import check_crash_setting, crash_point
from registry.config.published import load_published_contracts
from registry.config.score_model import load_score_model
from registry.config.settings import COUNCIL_TIMEZONE, Settings
from registry.progress import ProgressCallback
from registry.publish.pii import PIIFinding, merged_findings, pii_findings
from registry.publish.state import input_batches, nothing_new, read_pointer
from registry.publish.tables import TABLE_ORDER, WrittenSnapshot, write_snapshot_tables
from registry.quality import SuiteResult, registry_results, suite_versions
from registry.report import write_report
from registry.snapshot.formats import (
    ContractEntry,
    FileEntry,
    LatestPointer,
    LogEntry,
    Manifest,
    ScoreModelRef,
    sha256_hex,
)
from registry.snapshot.reader import Snapshot, read_latest, read_log_entry, read_manifest
from registry.storage import AlreadyExists, PreconditionFailed, Storage, probe_capabilities
from registry.storage.layout import (
    LATEST_KEY,
    log_key,
    manifest_key,
    report_key,
    snapshot_contract_path,
    snapshot_prefix,
    snapshot_table_path,
)

log = logging.getLogger(__name__)


# Build, PII check, data files, manifest, log entry, latest: what a progress bar counts.
PUBLISH_STAGES = 6
SNAPSHOT_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"
# A snapshot id: the UTC publish time to the microsecond, then 8 hex digits of its identity.
SNAPSHOT_ID_PATTERN = re.compile(r"^[0-9]{8}T[0-9]{12}Z-[0-9a-f]{8}$")


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
    # False when nothing had changed since latest (``only_if_changed``): this is latest.
    published: bool = True


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


def move_latest(storage: Storage, entry: LogEntry) -> LatestPointer:
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
    return move_latest(storage, head)


def unchanged_latest(storage: Storage, settings: Settings, latest: LatestPointer | None,
                     as_of: date) -> Manifest | None:
    """Latest's manifest when publishing now would give the same snapshot again: the same
    ``as_of``, nothing new in the ledger's journal since the current state, the same input
    batches, code, contracts, score model and suites. None otherwise. Reads the state's
    pointer, one journal listing and latest's manifest; builds nothing."""
    if latest is None or latest.as_of != as_of:
        return None
    found = read_pointer(storage)
    if found is None or not nothing_new(storage, found[0]):
        return None
    manifest = read_manifest(storage, latest.snapshot_id, latest.manifest_sha256)
    model = load_score_model(settings.config_dir, settings.score_model_version)
    contracts = load_contracts(settings.schemas_dir)
    same = (
        manifest.input_batches == input_batches(found[0])
        and manifest.code_version == __version__
        and manifest.score_model == ScoreModelRef(version=model.model.version,
                                                  sha256=model.sha256)
        and manifest.suite_versions == suite_versions(settings)
        and manifest.contract_versions == {n: c.version for n, c in sorted(contracts.items())}
    )
    return manifest if same else None


def publication_date(now: datetime) -> date:
    """The ``as_of`` a publication at ``now`` scores as of when none is given: that day in
    Asia/Shanghai."""
    return now.astimezone(COUNCIL_TIMEZONE).date()


def unchanged_publication(storage: Storage, settings: Settings,
                          as_of: date | None = None) -> PublishResult | None:
    """What ``publish_snapshot(..., only_if_changed=True)`` would answer without publishing,
    when that can be told without writing anything: latest's description (``published``
    False) when latest is the head of the commit log and publishing now would give its
    snapshot again (:func:`unchanged_latest`). None when a publication has to decide: something
    may be new, or latest is behind the log (the publisher moves it forward first). Reads
    latest, the next log entry, the state's pointer, one journal listing and latest's
    manifest."""
    as_of = as_of or publication_date(datetime.now(UTC))
    current = read_latest(storage)
    if current is None or read_log_entry(storage, current[0].seq + 1) is not None:
        return None
    manifest = unchanged_latest(storage, settings, current[0], as_of)
    return None if manifest is None else _latest_result(current[0], manifest, storage)


def _latest_result(latest: LatestPointer, manifest: Manifest, storage: Storage) -> PublishResult:
    report = report_key(manifest.snapshot_id)
    return PublishResult(
        snapshot_id=manifest.snapshot_id, manifest_key=latest.manifest, seq=latest.seq,
        as_of=manifest.as_of, previous_snapshot=manifest.previous_snapshot,
        rows=manifest.summary["rows"], trusted_by_grade=manifest.summary["trusted_by_grade"],
        changes=manifest.summary["changes"],
        report=report if storage.exists(report) else None, published=False,
    )


def _write_snapshot(storage: Storage, settings: Settings, built: WrittenSnapshot, *,
                    as_of: date, now: datetime, previous: str | None, seq: int,
                    step: ProgressCallback) -> Manifest:
    """Check the written tables (personal data, the registry gate), then store the data files
    and the contracts: steps 1 and 2 of the protocol. Returns the snapshot's manifest, to be
    stored next."""
    step("publish: checking for personal data", 1, PUBLISH_STAGES)
    contracts = load_contracts(settings.schemas_dir)
    pii_columns = {c for contract in contracts.values() for c in contract.pii_columns}
    findings = merged_findings(
        pii_findings({name: part}, pii_columns)
        for name in TABLE_ORDER for part in built.files[name])
    if findings:
        raise PIIRefused(findings)

    published = load_published_contracts()
    files = [
        FileEntry(path=snapshot_table_path(name), sha256=built.files[name].sha256,
                  bytes=built.files[name].bytes, rows=built.files[name].rows)
        for name in TABLE_ORDER
    ]
    snapshot_id = _snapshot_id(now, previous, files, as_of, seq)
    prefix = snapshot_prefix(snapshot_id)
    model = load_score_model(settings.config_dir, settings.score_model_version)
    # The registry gate, before anything of the snapshot is written.
    gate = registry_results(storage, settings,
                            {name: built.files[name] for name in ("merchants", "products")},
                            model.model, snapshot_id)
    if not all(result.success for result in gate):
        raise RegistrySuiteFailed(gate)

    step("publish: writing data files", 2, PUBLISH_STAGES)
    for i, name in enumerate(TABLE_ORDER):
        _put_once(storage, prefix + snapshot_table_path(name), built.files[name].read_bytes())
        if i == 0:
            crash_point(settings, "after_first_data_file", "publisher")
    # Each table's contract travels with it: a reader of this snapshot reads the meanings it
    # was published with, whatever the repository says later.
    data_contracts = []
    for name in TABLE_ORDER:
        contract = published[name]
        _put_once(storage, prefix + snapshot_contract_path(name), contract.raw)
        data_contracts.append(ContractEntry(
            table=name, version=contract.version, path=snapshot_contract_path(name),
            sha256=sha256_hex(contract.raw), bytes=len(contract.raw),
        ))
    crash_point(settings, "after_data_files", "publisher")

    manifest = Manifest(
        snapshot_id=snapshot_id,
        as_of=as_of,
        published_at=now,
        previous_snapshot=previous,
        code_version=__version__,
        contract_versions={name: c.version for name, c in sorted(contracts.items())},
        # Major versions, as v1 readers know them; the full versions are in data_contracts.
        output_contract_versions={name: published[name].major for name in TABLE_ORDER},
        score_model=ScoreModelRef(version=model.model.version, sha256=model.sha256),
        suite_versions=suite_versions(settings),
        input_batches=built.input_batches,
        files=files,
        summary=built.summary,
        data_contracts=data_contracts,
    )
    return manifest


def publish_snapshot(
    storage: Storage, settings: Settings, *, as_of: date | None = None,
    progress: ProgressCallback | None = None, full: bool = False,
    only_if_changed: bool = False,
) -> PublishResult:
    """Build the registry from the publishable staged batches and publish it as a new snapshot.

    The build reads the current state brought forward by the batches committed since the last
    publication (:mod:`registry.publish.state`); ``full`` rebuilds the state from every staged
    batch first. Both give the same data files. With ``only_if_changed``, nothing is built or
    written when the snapshot would be latest's again (:func:`unchanged_latest`): the result
    describes latest, with ``published`` False.

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
    use_jemalloc()
    # Before anything is written (recovering latest included): the protocol is only safe on a
    # store that really enforces create-if-absent and compare-and-swap.
    probe_capabilities(storage).require()
    now = datetime.now(UTC)
    as_of = as_of or publication_date(now)
    latest = recover_latest(storage)
    previous = latest.snapshot_id if latest else None
    seq = (latest.seq if latest else 0) + 1
    if only_if_changed and not full:
        manifest = unchanged_latest(storage, settings, latest, as_of)
        if latest is not None and manifest is not None:
            log.info("nothing new since snapshot %s (as_of %s): not published again",
                     latest.snapshot_id, as_of)
            return _latest_result(latest, manifest, storage)

    with tempfile.TemporaryDirectory(prefix="registry-publish-") as folder:
        step("publish: building the registry", 0, PUBLISH_STAGES)
        built = write_snapshot_tables(storage, settings, as_of, previous, Path(folder),
                                      full=full)
        manifest = _write_snapshot(storage, settings, built, as_of=as_of, now=now,
                                   previous=previous, seq=seq, step=step)
    snapshot_id, manifest_bytes = manifest.snapshot_id, manifest.to_json_bytes()
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
    move_latest(storage, entry)
    crash_point(settings, "after_latest", "publisher")
    step(f"publish: published {snapshot_id}", PUBLISH_STAGES, PUBLISH_STAGES)
    log.info("published snapshot %s (seq %d, as_of %s)", snapshot_id, seq, as_of)
    report: str | None = None
    try:
        # The new snapshot's files are the bytes just hashed and stored, and the previous one
        # was verified when the build opened it: the report reads both without verifying
        # them again.
        verified = [Snapshot(storage=storage, manifest=manifest),
                    *([built.previous] if built.previous else [])]
        report = write_report(storage, settings, snapshot_id, progress=progress,
                              verified=verified, committed=entry)
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
        rows=built.summary["rows"],
        trusted_by_grade=built.summary["trusted_by_grade"],
        changes=built.summary["changes"],
        report=report,
    )
