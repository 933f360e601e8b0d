"""Ingest council uploads from ``landing/`` into staged and quarantined Parquet batches.

One upload, that is one version of a landing object, is processed like this
(docs/architecture.md, "Exactly once"):

1. Archive the exact bytes, content-addressed (``raw/{R}/{D}/{sha256}.{ext}`` + ``.meta.json``),
   create-if-absent: nothing a council sent is lost, whatever happens next.
2. Claim the upload. Its batch id is when it landed (the landing object's last-modified
   second) and the first digits of its sha256, so the same upload always gets the same id.
   The claim (:class:`registry.ledger.IngestClaim`) is created if absent; whoever creates it
   processes the upload. A claim whose batch was committed, or that is older than
   ``ingest_claim_lease_s`` (its worker crashed), is taken over by compare-and-swap, keeping
   its batch id, so a rerun finishes the work and never makes a second batch.
3. Decide the case. Bytes equal to the region's and dataset's latest batch before this one
   (in landing order) are a *duplicate*: a record that reads the rows already staged, which
   changes nothing. Anything else readable is a *new* batch, even bytes sent before (list A,
   then B, then A again restores A), or sent first to the wrong dataset or by another
   region. An unreadable file is *rejected*, which blocks nothing uploaded later.
4. For a new batch write staged and quarantined Parquet under the batch id and run the
   batch gate; then commit the batch record, create-if-absent.
5. Write the receipt to ``landing/{R}/_receipts/`` (it says which case applied), finish the
   claim, and mark this version of the landing object seen, so the next run skips it after
   one listing instead of re-reading and re-hashing every landing file.

Every step is idempotent, so a crash anywhere leaves either nothing or something a rerun
completes: the batch's content is a function of the bytes and of the claim (batch id and
ingest time), so a takeover writes the same rows again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl

from registry import ledger
from registry.allocator import use_jemalloc
from registry.config.contracts import (
    LINEAGE_SCHEMA,
    load_contracts,
    load_vocabulary,
    within_region,
)
from registry.config.crashpoints import check_crash_setting, crash_point
from registry.config.quality import load_quality_config
from registry.config.regions import load_regions
from registry.config.settings import COUNCIL_TIMEZONE, Settings
from registry.ingest import read_worker
from registry.ingest import rejections as rj
from registry.ingest.normalize import uscc_from_text
from registry.ingest.receipts import receipt_csv, receipt_document
from registry.ingest.tables import SOURCE_ROW, Limits
from registry.ingest.uscc import uscc_is_valid
from registry.ingest.validation import UploadCheck, checked_upload, staged_schema
from registry.quality import data_docs as quality_data_docs
from registry.quality import (
    gate_record_fields,
    held_receipt_fields,
    staged_batch_gate,
    write_scorecards,
)
from registry.quality.gates import row_count_context
from registry.quality.preflight import gate_warnings
from registry.quality.runner import PendingDataDocs
from registry.quality.suites import (
    empty_optional_columns,
    gate_frame,
    load_suite,
    row_count_bounds,
    staged_suite_parameters,
    suite_in_scope,
)
from registry.storage import (
    AlreadyExists,
    InvalidKey,
    ObjectInfo,
    PreconditionFailed,
    Storage,
    checked_key,
    layout,
)

log = logging.getLogger(__name__)

PART_NAME = "part-0.parquet"
_EXTENSION = re.compile(r"\.([A-Za-z0-9]{1,8})$")

Status = Literal["staged", "rejected", "duplicate", "in_progress", "skipped"]



@dataclass(frozen=True)
class UploadResult:
    """What became of one landing object."""

    key: str
    region: str | None
    dataset: str | None
    status: Status
    upload_id: str | None = None
    batch_id: str | None = None
    sha256: str | None = None
    rows_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    file_error: str | None = None
    duplicate_of: str | None = None
    # Staged, but held out of publication by the batch gate (the receipt says why).
    held: bool = False
    # Which case of exactly-once applied (registry.ledger.UploadCase), for an upload read.
    case: str | None = None
    # The storage key of the upload's JSON receipt (layout.receipt_key).
    receipt: str | None = None


@dataclass(frozen=True)
class IngestSummary:
    results: list[UploadResult] = field(default_factory=list)

    def by_region(self) -> dict[str, dict[str, int]]:
        """Per region: uploads by outcome, and rows in/accepted/quarantined. A staged batch that
        the batch gate held counts as ``held``, not ``staged``: ``staged`` is staged and
        publishable."""
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            totals = out.setdefault(r.region or "?", {})
            for name, n in (
                ("held" if r.held else r.status, 1), ("rows_in", r.rows_in),
                ("accepted", r.accepted), ("quarantined", r.quarantined),
            ):
                totals[name] = totals.get(name, 0) + n
        return out

    def batches(self) -> list[tuple[str, str, str]]:
        """(dataset, region, batch id) of every upload that became a batch record."""
        return [(r.dataset, r.region, r.batch_id) for r in self.results
                if r.batch_id and r.dataset and r.region]

    def as_dict(self) -> dict[str, Any]:
        return {"results": [asdict(r) for r in self.results], "by_region": self.by_region()}


def read_limits(settings: Settings) -> Limits:
    """The limits an upload is read under, from the settings: with ``read_in_worker``, in a
    worker process held to the time and memory limits (:mod:`registry.ingest.read_worker`)."""
    return Limits(
        max_upload_bytes=settings.max_upload_bytes,
        max_rows=settings.max_rows,
        max_columns=settings.max_columns,
        max_cells=settings.max_cells,
        max_cell_chars=settings.max_cell_chars,
        max_xlsx_uncompressed_bytes=settings.max_xlsx_uncompressed_bytes,
        max_read_seconds=settings.read_time_limit_s if settings.read_in_worker else None,
        max_read_memory_bytes=(
            settings.read_memory_limit_mb * 2**20 if settings.read_in_worker else None
        ),
    )


def council_time(at: datetime) -> datetime:
    """``at`` in the councils' time zone (for "not in the future" checks and receipts)."""
    return at.astimezone(COUNCIL_TIMEZONE)


def region_of_key(key: str) -> str | None:
    """The region a landing key belongs to (what the flow tags its task with)."""
    parts = layout.landing_parts(key)
    return parts[0] if parts else None


def list_pending(
    storage: Storage, settings: Settings, region: str | None = None, dataset: str | None = None
) -> list[str]:
    """Landing keys (optionally of one region and dataset) whose current version has not been
    processed yet, in key order. Costs one listing of landing/ and one of the seen markers."""
    prefix = layout.landing_prefix(region, dataset) if region else layout.LANDING_PREFIX
    seen = ledger.seen_keys(storage)
    pending = []
    for info in storage.list(prefix):
        parts = layout.landing_parts(info.key)
        if parts is None or (dataset and parts[1] != dataset):
            continue
        if ledger.seen_marker_key(info.key, _version(info)) not in seen:
            pending.append(info.key)
    return pending


def ingest_pending(
    storage: Storage, settings: Settings, *, region: str | None = None,
    dataset: str | None = None,
) -> IngestSummary:
    """Ingest every pending upload one after the other (the flow does the same in parallel),
    store the Data Docs of the batches it gated, all built at once, then write each region's
    data-quality scorecard of the run. A run that found nothing to do writes nothing. A run
    killed before its end leaves its batches' pages unwritten, like its scorecards; each batch
    record carries the gate's whole result all the same, reasons in Chinese and English."""
    data_docs = PendingDataDocs()
    try:
        summary = IngestSummary(
            [ingest_object(storage, settings, key, data_docs=data_docs) for key in list_pending(
                storage, settings, region, dataset
            )]
        )
    finally:
        read_worker.close_idle_workers()
        # Also when an upload failed: the batches committed before it name their pages.
        # Through its module, so that a wrapper set on the module sees the call (bench/run.py
        # times Great Expectations that way).
        quality_data_docs.upload_data_docs(storage, data_docs)
    if summary.results:
        write_scorecards(storage, settings, summary.batches())
    return summary


def checked_file(settings: Settings, path: Path, *, region: str, dataset: str) -> UploadCheck:
    """``registry check`` and the check ``registry upload`` runs first: the ingest path for a
    local file, without storage, with ``warnings`` for the batch-gate rules the file will trip
    (:func:`batch_gate_warnings`).

    Raises ValueError for a region or dataset that the configuration does not know."""
    _check_names(settings, region, dataset)
    today = council_time(datetime.now(UTC)).date()
    check = _upload_checked(settings, path.read_bytes(), path.name, region=region,
                            dataset=dataset, today=today)
    if check.file_errors:
        return check
    return replace(check, warnings=tuple(batch_gate_warnings(settings, check, today)))


def _check_names(settings: Settings, region: str, dataset: str) -> None:
    regions = load_regions(settings.config_dir)
    contracts = load_contracts(settings.schemas_dir)
    if region not in regions.regions:
        raise ValueError(f"unknown region {region!r}; known: {', '.join(regions.regions)}")
    if dataset not in contracts:
        raise ValueError(f"unknown dataset {dataset!r}; known: {', '.join(contracts)}")


def batch_gate_warnings(settings: Settings, check: UploadCheck, today: date
                        ) -> list[dict[str, Any]]:
    """The staged-batch gate's failures that ``check``'s accepted rows alone will cause, in the
    batch's scope (the region's upload mode), as dicts: ``code``, ``column``, ``message_zh``,
    ``message_en``. A replace list is bounded by the row-count floor only: the previous full
    list is in storage, which a check does not read."""
    config = load_quality_config(settings.config_dir)
    contract = load_contracts(settings.schemas_dir)[check.dataset]
    mode = load_regions(settings.config_dir).regions[check.region].upload_mode(check.dataset)
    staged = gate_frame(check.accepted.drop(SOURCE_ROW), contract)
    suite, _ = suite_in_scope(
        load_suite(settings.expectations_dir, config.suites.staged[check.dataset]), mode=mode,
        empty_optional=empty_optional_columns(staged, contract.required_columns))
    bounds = row_count_bounds(config, check.dataset, mode, None)
    params = staged_suite_parameters(config, region=check.region, dataset=check.dataset,
                                     today=today, bounds=bounds)
    return [{"code": f.code, "column": f.column, "message_zh": f.message_zh,
             "message_en": f.message_en}
            for f in gate_warnings(staged, suite, params,
                                   context=row_count_context(bounds, staged.height, config)[1])]


@dataclass(frozen=True)
class LandedUpload:
    """Where ``registry upload`` put a file, and where its receipt will appear."""

    key: str
    upload_id: str
    receipt_key: str


def upload_file(storage: Storage, settings: Settings, path: Path, *, region: str, dataset: str
                ) -> LandedUpload:
    """``registry upload``: put a local file at ``landing/{region}/{dataset}/{file name}``;
    return its key and the key its JSON receipt will have once it is ingested. Raises
    ValueError for an unknown region or dataset."""
    _check_names(settings, region, dataset)
    file = unicodedata.normalize("NFC", path.name)
    key = layout.landing_prefix(region, dataset) + file
    storage.write_bytes(key, path.read_bytes())
    upload_id = _upload_id(storage.head(key))
    return LandedUpload(key, upload_id, layout.receipt_key(region, upload_id, file, "json"))


# --------------------------------------------------------------------------------------------


def _json(doc: dict[str, Any], *, indent: int | None = 2) -> bytes:
    return json.dumps(doc, ensure_ascii=False, indent=indent, default=str).encode("utf-8")


def _upload_id(info: ObjectInfo) -> str:
    """One version of a landing object, sorting by when it landed:
    ``20261130T071512Z-<12 hex digits of its key and version>``."""
    digest = hashlib.sha256(f"{info.key}\n{_version(info)}".encode()).hexdigest()[:12]
    return f"{ledger.landed_stamp(info.last_modified)}-{digest}"


def _extension(file: str) -> str:
    match = _EXTENSION.search(file)
    return match.group(1).lower() if match else "bin"


@dataclass
class _Claim:
    etag: str
    claim: ledger.IngestClaim


def _claim(storage: Storage, settings: Settings, claim: ledger.IngestClaim, now: datetime
           ) -> _Claim | ledger.IngestClaim | None:
    """Our claim on the upload, the finished claim of an earlier processing of the same batch
    (this very object, or the same bytes landed in the same second under another name), or
    None when another worker holds a live claim (the upload stays pending)."""
    etag = ledger.create_claim(storage, claim)
    if etag is not None:
        return _Claim(etag, claim)
    found = ledger.read_claim(storage, claim.dataset, claim.region, claim.batch_id)
    if found is None:  # cannot happen: claims are never deleted
        return None
    current, etag = found
    if current.state == "done":
        return current
    committed = ledger.read_batch_record(storage, current.dataset, current.region,
                                         current.batch_id) is not None
    expired = now - current.claimed_at > timedelta(seconds=settings.ingest_claim_lease_s)
    # Another upload of the same batch finishes its own claim, unless its file is gone.
    ours = current.source_key == claim.source_key or not storage.exists(current.source_key)
    if not ((committed or expired) and ours):
        return None
    takeover = current.model_copy(update={
        "source_key": claim.source_key, "version": claim.version, "claimed_at": now,
        "takeovers": current.takeovers + 1,
    })
    try:
        return _Claim(ledger.replace_claim(storage, takeover, etag), takeover)
    except PreconditionFailed:
        return None


def _with_lineage(frame: pl.DataFrame, claim: ledger.IngestClaim) -> pl.DataFrame:
    return frame.with_columns(
        pl.lit(claim.source_key).alias("_source_key"),
        pl.lit(claim.sha256).alias("_sha256"),
        pl.col(SOURCE_ROW).cast(pl.Int64),
        pl.lit(claim.batch_id).alias("_batch_id"),
        pl.lit(claim.ingested_at).cast(LINEAGE_SCHEMA["_ingested_at"]).alias("_ingested_at"),
    )


def staged_frame(accepted: pl.DataFrame, contract_schema: dict, claim: ledger.IngestClaim
                 ) -> pl.DataFrame:
    """Accepted rows with lineage, in the staged column order and dtypes."""
    return _with_lineage(accepted, claim).select(
        pl.col(name).cast(dtype) for name, dtype in contract_schema.items()
    )


def _batch_record(check: UploadCheck, claim: ledger.IngestClaim, mode: str,
                  gate: dict[str, Any], *, kept_merchants: list[str]) -> ledger.BatchRecord:
    batch_id = claim.batch_id
    return ledger.BatchRecord(
        batch_id=batch_id, dataset=check.dataset, region=check.region, mode=mode,
        sha256=claim.sha256, source_key=claim.source_key, landed_at=claim.landed_at,
        ingested_at=claim.ingested_at, created_at=datetime.now(UTC),
        file=check.file, format=check.format, encoding=check.encoding, sheet=check.sheet,
        rows_in=check.rows_in, accepted=check.accepted.height, quarantined=check.rejected,
        error_counts=(dict(check.errors.group_by("code").len().sort("code").iter_rows())
                      if not check.errors.is_empty() else {}),
        contract_version=check.contract_version, kept_merchants=kept_merchants,
        staged_key=layout.staged_prefix(check.dataset, check.region, batch_id) + PART_NAME,
        quarantine_key=layout.quarantine_prefix(check.dataset, check.region, batch_id)
        + PART_NAME,
        **gate,
    )


def _duplicate_record(claim: ledger.IngestClaim, latest: ledger.BatchRecord, file: str
                      ) -> ledger.BatchRecord:
    """The record of an upload whose bytes equal the latest batch before it: that batch's
    rows, counts and gate verdict, read from the files that first staged them."""
    return latest.model_copy(update={
        "batch_id": claim.batch_id, "source_key": claim.source_key, "file": file,
        "landed_at": claim.landed_at, "ingested_at": claim.ingested_at,
        "created_at": datetime.now(UTC), "same_as": latest.stages,
    })


def _write_receipt(storage: Storage, region: str, doc: dict[str, Any]) -> str:
    """Write the receipt ``doc`` as JSON and CSV; return the JSON one's key."""
    # Not indented: Python's JSON encoder is pure Python (slow) when asked to indent, and a
    # receipt may list thousands of errors. The CSV is the one for people.
    key = layout.receipt_key(region, doc["upload_id"], doc["file"], "json")
    storage.write_bytes(key, _json(doc, indent=None))
    storage.write_bytes(layout.receipt_key(region, doc["upload_id"], doc["file"], "csv"),
                        receipt_csv(doc))
    return key


def _version(info: ObjectInfo) -> str:
    """One version of an object: its etag and modification second. S3's etag is the content's
    MD5, so the same file written again keeps it; the time tells the two writes apart (to the
    second, the precision S3 and Ceph report it with in both listings and heads)."""
    return f"{info.etag}@{int(info.last_modified.timestamp())}"


def _mark_seen(storage: Storage, info: ObjectInfo, result: UploadResult) -> None:
    ledger.mark_seen(storage, ledger.SeenMarker(key=info.key, version=_version(info),
                                                result=asdict(result)))


def _refused_unread(
    storage: Storage, info: ObjectInfo, region: str, dataset: str, file: str,
    error: rj.FileRejected, now: datetime, *, source_key: str | None = None,
) -> UploadResult:
    """A refusal decided without reading the bytes (unknown dataset, over the size limit, an
    unsafe key, shown in the receipt as ``source_key``)."""
    key = info.key
    upload_id = _upload_id(info)
    doc = receipt_document(
        upload_id=upload_id, region=region, dataset=dataset, file=file,
        source_key=source_key or _shown(key), received_at=council_time(now).isoformat(),
        sha256=None, file_error=error,
    )
    receipt = _write_receipt(storage, region, doc)
    result = UploadResult(key, region, dataset, "rejected", upload_id=upload_id,
                          file_error=error.code, receipt=receipt)
    _mark_seen(storage, info, result)
    return result


_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SHOWN_KEY_CHARS = 200


def _shown(text: str, limit: int | None = None) -> str:
    """``text`` for a receipt: invisible and control characters spelled out (\\u202e), and
    cut at ``limit`` characters, so a clerk sees what is wrong with the name."""
    shown = _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
    return shown if limit is None or len(shown) <= limit else shown[:limit] + "…"


def _refused_unsafe_key(
    storage: Storage, key: str, region: str, dataset: str, error: InvalidKey, now: datetime
) -> UploadResult:
    """Refuse a landing key the storage seam cannot address, without reading it: a receipt
    for the region the key names, and a seen marker for the version the listing shows."""
    segments = key.split("/")
    safe = 2  # landing/{known region}
    while safe < len(segments) - 1:
        try:
            checked_key("/".join(segments[: safe + 1]))
        except InvalidKey:
            break
        safe += 1
    listed = next((i for i in storage.list("/".join(segments[:safe]) + "/") if i.key == key),
                  None)
    if listed is None:  # deleted since it was listed
        return UploadResult(key, region, dataset, "skipped")
    reason = str(error).split(":", 1)[0].removeprefix("object key ")
    return _refused_unread(
        storage, listed, region, _shown(dataset, _SHOWN_KEY_CHARS),
        _shown(segments[-1], _SHOWN_KEY_CHARS), rj.FileRejected(rj.KEY_UNSAFE, reason), now,
        source_key=_shown(key, _SHOWN_KEY_CHARS),
    )


def ingest_object(storage: Storage, settings: Settings, key: str, *,
                  data_docs: PendingDataDocs | None = None) -> UploadResult:
    """Process one version of a landing object exactly once (see the module docstring).

    A new batch's gate keeps its Data Docs in ``data_docs``, which the caller stores at the end
    of its run (:func:`registry.quality.data_docs.upload_data_docs`); without it they are
    stored with the batch. Returns the outcome; raises only on storage failures (the caller
    retries: every step is idempotent) or when accepted rows break the staged schema (a bug,
    which stops the batch).
    """
    check_crash_setting(settings)
    use_jemalloc()
    now = datetime.now(UTC)
    parts = layout.landing_parts(key)
    regions = load_regions(settings.config_dir)
    if parts is None or parts[0] not in regions.regions:
        log.warning("%s: not under landing/{known region}/{dataset}/, left alone", key)
        return UploadResult(key, parts[0] if parts else None, None, "skipped")
    region, dataset, file = parts
    try:
        checked_key(key)
    except InvalidKey as exc:
        # S3 stores keys with "..", control characters or non-NFC names as given; the storage
        # seam refuses to touch them. The region is the key's second segment whatever
        # follows, so the council that wrote it is told, in its own receipts folder.
        return _refused_unsafe_key(storage, key, region, dataset, exc, now)
    info = storage.head(key)
    contracts = load_contracts(settings.schemas_dir)
    if dataset not in contracts:
        # A folder name with an invisible character looks like a known one: spell it out.
        return _refused_unread(storage, info, region, _shown(dataset), _shown(file),
                               rj.FileRejected(rj.UNKNOWN_DATASET, _shown(dataset)), now)
    if info.size > settings.max_upload_bytes:
        detail = f"{info.size:,} bytes > {settings.max_upload_bytes:,}"
        return _refused_unread(storage, info, region, dataset, file,
                               rj.FileRejected(rj.FILE_TOO_LARGE, detail), now)

    data = storage.read_bytes(key)
    today = council_time(now).date()
    sha256 = hashlib.sha256(data).hexdigest()
    landed_at = ledger.landed_time(info.last_modified)
    batch_id = ledger.batch_id_for(landed_at, sha256)
    # An upload another worker holds, or one finished before the run died, is not checked
    # unless this run ends up owning its claim.
    known = ledger.read_claim(storage, dataset, region, batch_id) is not None
    with ThreadPoolExecutor(max_workers=1) as parse_thread:
        # Checking the rows needs no claim, so for a new upload it starts now and runs while
        # the bytes are archived and claimed (storage I/O releases the GIL). It assumes a
        # fresh claim, judged as of today.
        checking = None if known else parse_thread.submit(
            _upload_checked, settings, data, file, region=region, dataset=dataset, today=today)
        ext = _extension(file)
        # Already archived is fine: the same bytes, sent before (to this dataset or not).
        with contextlib.suppress(AlreadyExists):
            storage.put_if_absent(layout.raw_key(region, dataset, sha256, ext), data)
        with contextlib.suppress(AlreadyExists):
            storage.put_if_absent(
                layout.raw_meta_key(region, dataset, sha256, ext),
                _json({"sha256": sha256, "bytes": len(data), "source_key": key,
                       "region": region, "dataset": dataset, "archived_at": now.isoformat()}),
            )
        crash_point(settings, "after_archive", "ingest worker")

        claim = _claim(storage, settings, ledger.IngestClaim(
            batch_id=batch_id, upload_id=_upload_id(info), region=region, dataset=dataset,
            sha256=sha256, source_key=key, version=_version(info), landed_at=landed_at,
            claimed_at=now, ingested_at=now, state="claimed",
        ), now)
        if claim is None:
            return UploadResult(key, region, dataset, "in_progress", sha256=sha256)
        if not isinstance(claim, _Claim):
            return _finished_earlier(storage, info, region, dataset, file, claim)
        crash_point(settings, "after_claim", "ingest worker")
        check = checking.result() if checking else None
    # A takeover keeps the claim's ingest time, which the rows are judged by, so that it
    # writes the same rows again: check again if it differs from the guess.
    claimed_today = council_time(claim.claim.ingested_at).date()
    if check is None or claimed_today != today:
        check = _upload_checked(settings, data, file, region=region, dataset=dataset,
                                today=claimed_today)
    return _processed(storage, settings, info, file, claim, check, data_docs)


def _upload_checked(settings: Settings, data: bytes, file: str, *, region: str, dataset: str,
                    today: date) -> UploadCheck:
    """:func:`checked_upload` with the deployment's contract, vocabulary, regions and limits."""
    return checked_upload(
        data, file, contract=load_contracts(settings.schemas_dir)[dataset],
        vocabulary=load_vocabulary(settings.schemas_dir), regions=load_regions(settings.config_dir),
        region=region, limits=read_limits(settings), today=today,
    )


def _finished_earlier(
    storage: Storage, info: ObjectInfo, region: str, dataset: str, file: str,
    earlier: ledger.IngestClaim,
) -> UploadResult:
    """An upload whose batch was processed before: this very object version, whose run
    stopped before marking it seen; or the same bytes landed in the same second under another
    name, which is the same batch (a duplicate)."""
    outcome = earlier.outcome
    assert outcome is not None  # a finished claim carries its outcome
    if (earlier.source_key, earlier.version) == (info.key, _version(info)):
        result = UploadResult(info.key, region, dataset, outcome.status,
                              upload_id=earlier.upload_id, batch_id=outcome.batch_id,
                              sha256=earlier.sha256, rows_in=outcome.rows_in,
                              accepted=outcome.accepted, quarantined=outcome.quarantined,
                              file_error=outcome.file_error, case=outcome.case,
                              receipt=layout.receipt_key(region, earlier.upload_id, file, "json"))
        _mark_seen(storage, info, result)
        return result
    upload_id = _upload_id(info)
    # The same shape as a duplicate of the latest batch (:func:`_duplicate_of`).
    record = (ledger.read_batch_record(storage, dataset, region, outcome.batch_id)
              if outcome.batch_id else None)
    duplicate_of = (_duplicate_of(storage, record) if record is not None else
                    {"batch_id": None, "source_key": earlier.source_key,
                     "status": outcome.status})
    doc = receipt_document(
        upload_id=upload_id, region=region, dataset=dataset, file=file, source_key=info.key,
        received_at=council_time(earlier.ingested_at).isoformat(), sha256=earlier.sha256,
        duplicate_of=duplicate_of,
    )
    receipt = _write_receipt(storage, region, doc)
    result = UploadResult(info.key, region, dataset, "duplicate", upload_id=upload_id,
                          batch_id=outcome.batch_id, sha256=earlier.sha256,
                          duplicate_of=duplicate_of["source_key"], case="duplicate",
                          receipt=receipt)
    _mark_seen(storage, info, result)
    return result


def _processed(
    storage: Storage, settings: Settings, info: ObjectInfo, file: str, claim: _Claim,
    check: UploadCheck, data_docs: PendingDataDocs | None,
) -> UploadResult:
    key, ours = info.key, claim.claim
    region, dataset, batch_id = ours.region, ours.dataset, ours.batch_id
    regions = load_regions(settings.config_dir)
    contract = load_contracts(settings.schemas_dir)[dataset]
    mode = regions.regions[region].upload_mode(dataset)
    # Committed already when a worker that took over our claim, or the run that died, got
    # that far: its record stands.
    committed = ledger.read_batch_record(storage, dataset, region, batch_id)
    if committed is None and check.file_error is None:
        latest = ledger.latest_batch_before(storage, dataset, region,
                                            (ours.landed_at, ours.source_key, batch_id))
        if latest is not None and (latest.sha256, latest.mode) == (ours.sha256, mode):
            # The region's current state sent again: a record in its place in the order,
            # reading the rows already staged, changes nothing.
            committed = ledger.commit_batch(storage, _duplicate_record(ours, latest, file))
        else:
            committed = ledger.commit_batch(storage, _staged_batch(
                storage, settings, check, ours, contract, mode, data_docs))
        crash_point(settings, "after_batch_record", "ingest worker")
    if committed is None:
        status: Status = "rejected"
        case: ledger.UploadCase = "rejected"
    elif committed.same_as is not None:
        status, case = "duplicate", "duplicate"
    else:
        status, case = "staged", "new"
    batch_id_out = committed.batch_id if committed else None
    held = held_receipt_fields(committed) if committed and case == "new" else None
    duplicate_of = _duplicate_of(storage, committed) if committed and case == "duplicate" else None
    result = UploadResult(
        key, region, dataset, status, upload_id=ours.upload_id, batch_id=batch_id_out,
        sha256=ours.sha256, rows_in=check.rows_in, accepted=check.accepted.height,
        quarantined=check.rejected, file_error=check.file_error.code if check.file_error else None,
        duplicate_of=duplicate_of["source_key"] if duplicate_of else None,
        held=held is not None, case=case,
        receipt=layout.receipt_key(region, ours.upload_id, file, "json"),
    )
    kept = (_filings_kept(check, contract) if mode == "replace" and case == "new" else [])
    doc = receipt_document(
        upload_id=ours.upload_id, region=region, dataset=dataset, file=file, source_key=key,
        received_at=council_time(ours.ingested_at).isoformat(), sha256=ours.sha256,
        check=check if case != "duplicate" else None, batch_id=batch_id_out, mode=mode,
        held=held, kept_previous=kept,
        kept_previous_merchants=committed.kept_merchants if committed and case == "new" else [],
        duplicate_of=duplicate_of,
    )
    _write_receipt(storage, region, doc)
    crash_point(settings, "after_receipt", "ingest worker")
    done = ours.model_copy(update={
        "state": "done", "finished_at": datetime.now(UTC),
        "outcome": ledger.ClaimOutcome(
            status=status, case=case, batch_id=batch_id_out, rows_in=result.rows_in,
            accepted=result.accepted, quarantined=result.quarantined,
            file_error=result.file_error),
    })
    # PreconditionFailed: taken over while we worked; the new holder records the same outcome.
    with contextlib.suppress(PreconditionFailed):
        ledger.replace_claim(storage, done, claim.etag)
    crash_point(settings, "after_ledger_done", "ingest worker")
    _mark_seen(storage, info, result)
    return result


def _duplicate_of(storage: Storage, duplicate: ledger.BatchRecord) -> dict[str, Any]:
    """What a duplicate's receipt says of the batch it repeats (the council's own)."""
    original = ledger.read_batch_record(storage, duplicate.dataset, duplicate.region,
                                        duplicate.stages)
    return {"batch_id": duplicate.stages,
            "source_key": original.source_key if original else None,
            "status": duplicate.status}


def _filings_kept(check: UploadCheck, contract: Any) -> list[str]:
    """The natural keys (beyond the region) of a complete list's quarantined rows: each keeps
    its previous accepted row, if it had one, until the council corrects it."""
    return sorted({"/".join(map(str, row)) for row in _filing_rows(check, contract).iter_rows()})


def _filing_rows(check: UploadCheck, contract: Any) -> pl.DataFrame:
    """:func:`_filings_kept`'s rows: the natural-key columns (beyond the region) of the
    quarantined rows that fill them all, but for keys the batch also accepted a row of (a copy
    of a row read once, or settled: registry.ingest.validation), which it does not keep."""
    columns = within_region(contract.natural_key)
    if check.quarantined.is_empty() or any(c not in check.quarantined.columns for c in columns):
        return pl.DataFrame()
    named = check.quarantined.select(columns).drop_nulls()
    if check.accepted.is_empty():
        return named
    accepted = check.accepted.select(columns).cast(named.schema)
    return named.join(accepted, on=columns, how="anti", nulls_equal=False)


def _merchants_kept(check: UploadCheck, contract: Any) -> list[str]:
    """The credit codes of a complete list's quarantined rows that name a merchant (a valid
    code) but no filing (a natural-key cell left empty): each such merchant keeps its previous
    rows until the council corrects the row (:func:`registry.publish.inputs.kept_rows`)."""
    return sorted(set(_merchant_rows(check, contract)["uscc"]))


def _merchant_rows(check: UploadCheck, contract: Any) -> pl.DataFrame:
    """:func:`_merchants_kept`'s rows, one ``uscc`` column."""
    columns = within_region(contract.natural_key)
    quarantined = check.quarantined
    if quarantined.is_empty() or any(c not in quarantined.columns
                                     for c in (*columns, "uscc")):
        return pl.DataFrame({"uscc": []}, schema={"uscc": pl.String})
    return quarantined.filter(pl.any_horizontal(pl.col(columns).is_null())).select(
        uscc_from_text(pl.col("uscc").cast(pl.String)).alias("uscc")
    ).filter(uscc_is_valid(pl.col("uscc")))


def _rows_kept(check: UploadCheck, contract: Any) -> int:
    """How many of a complete list's quarantined rows keep something published: those naming a
    filing (:func:`_filings_kept`) and those naming only a merchant (:func:`_merchants_kept`)."""
    return _filing_rows(check, contract).height + _merchant_rows(check, contract).height


def _staged_batch(
    storage: Storage, settings: Settings, check: UploadCheck, claim: ledger.IngestClaim,
    contract: Any, mode: str, data_docs: PendingDataDocs | None,
) -> ledger.BatchRecord:
    """Write a new batch's staged and quarantined Parquet, run the batch gate, and return the
    record that commits it (not yet written)."""
    region, dataset, batch_id = claim.region, claim.dataset, claim.batch_id
    staged = staged_frame(check.accepted, contract.staged_schema(), claim)
    quarantined = _with_lineage(check.quarantined, claim)
    staged_key = layout.staged_prefix(dataset, region, batch_id) + PART_NAME
    quarantine_key = layout.quarantine_prefix(dataset, region, batch_id) + PART_NAME

    def write_batch_files() -> None:
        # The contract of what the registry build reads; a failure here is a bug in
        # normalisation or validation, and stops the batch before it is written (the gate's
        # Data Docs, stored meanwhile or at the end of the run, are an uncommitted batch's,
        # which registry.publish.gc deletes).
        staged_schema(contract).validate(staged)
        storage.write_parquet(staged, staged_key)
        crash_point(settings, "after_staged_file", "ingest worker")
        storage.write_parquet(quarantined, quarantine_key)
        crash_point(settings, "after_quarantine_file", "ingest worker")

    # The schema check and the Parquet writes are mostly native code that releases the GIL,
    # and the batch gate is mostly Python (Great Expectations on pandas), so they run side by
    # side. The gate only reads the frame (and keeps its Data Docs): a batch that fails its
    # suite is staged all the same, but held out of publication until someone releases it.
    with ThreadPoolExecutor(max_workers=1) as writer:
        writing = writer.submit(write_batch_files)
        gate = gate_record_fields(staged_batch_gate(
            storage, settings, staged, region=region, dataset=dataset, batch_id=batch_id,
            mode=mode, today=council_time(claim.ingested_at).date(),
            order=ledger.batch_order(claim.landed_at, claim.source_key, batch_id),
            data_docs=data_docs,
            kept_rows=_rows_kept(check, contract) if mode == "replace" else 0,
        ))
        writing.result()
    crash_point(settings, "after_batch_gate", "ingest worker")
    kept = _merchants_kept(check, contract) if mode == "replace" else []
    return _batch_record(check, claim, mode, gate, kept_merchants=kept)
