"""Where everything lives under the storage root. Only keys, no I/O.

Keys under ``ledger/`` are read and written by :mod:`registry.ledger` alone."""

from __future__ import annotations

import hashlib
import re
import unicodedata

DATASETS = ("merchants", "complaints", "inspections", "gift_evaluations")

RECEIPTS_DIR = "_receipts"
RECEIPT_STEM_CHARS = 80
# \w is Unicode-aware: Chinese file names stay readable in receipt keys.
_UNSAFE_NAME_CHARS = re.compile(r"[^\w-]+")
# What downstream apps read: the snapshots, their commit log and the latest pointer.
PUBLISHED_PREFIX = "registry/"
LATEST_KEY = f"{PUBLISHED_PREFIX}latest.json"
SNAPSHOTS_PREFIX = f"{PUBLISHED_PREFIX}snapshots/"
LOG_PREFIX = f"{PUBLISHED_PREFIX}_log/"
CLAIMS_PREFIX = "ledger/ingest/"
BATCHES_PREFIX = "ledger/batches/"
RELEASES_PREFIX = "ledger/releases/"
SEEN_PREFIX = "ledger/seen/"
# The batches the gate held, one small key per batch, written before the batch's record: which
# batches are held is then one listing and the held records, not every record ever committed.
HELD_PREFIX = "ledger/held/"
# Written once every held record of the store has its key (a store from before the index is
# indexed on its first read).
HELD_INDEX_COMPLETE_KEY = f"{HELD_PREFIX}complete.json"
# The ledger's journal: one entry per committed batch or release, keyed by when it was written,
# so that a publisher lists what is new with one listing that starts after what it has read.
JOURNAL_PREFIX = "ledger/journal/"
# The compacted current state (docs/architecture.md §11.8): rows in effect per dataset and
# region, derived from staged batches, and the pointer that names the state in force.
STATE_PREFIX = "state/"
STATE_POINTER_KEY = f"{STATE_PREFIX}current.json"
LANDING_PREFIX = "landing/"
RAW_PREFIX = "raw/"
STAGED_PREFIX = "staged/"
QUARANTINE_PREFIX = "quarantine/"
REPORTS_PREFIX = "reports/"
BATCH_DOCS_PREFIX = "reports/batches/"
# Every HTML page under reports/ (a report, a Data Docs site) opens at this file.
PAGE_FILE = "index.html"
# A Data Docs site's folder: under a batch's folder of reports/batches/, under a snapshot's
# report folder, or under reports/refused/{snapshot_id}/.
DATA_DOCS_DIR = "data_docs/"
# Great Expectations' static files (favicon, fonts) are the same for every run: stored once.
DATA_DOCS_STATIC_PREFIX = "reports/data_docs/static/"
# The chart runtime every report inlines, stored once per version (registry.report.writer).
CHART_RUNTIME_PREFIX = "reports/static/chart-runtime/"
SCORECARDS_PREFIX = "reports/scorecards/"
REFUSED_PREFIX = "reports/refused/"


def landing_prefix(region: str, dataset: str | None = None) -> str:
    """Councils write here and nowhere else."""
    return f"{LANDING_PREFIX}{region}/{dataset}/" if dataset else f"{LANDING_PREFIX}{region}/"


def landing_parts(key: str) -> tuple[str, str, str] | None:
    """(region, dataset, file name) of a landing key, or None for receipts and stray keys."""
    parts = key.split("/")
    if len(parts) < 4 or f"{parts[0]}/" != LANDING_PREFIX or parts[2] == RECEIPTS_DIR:
        return None
    return parts[1], parts[2], parts[-1]


def receipt_key(region: str, upload_id: str, file: str, ext: str) -> str:
    """``landing/{region}/_receipts/{upload_id}_{stem}.{ext}``: the upload id sorts a region's
    receipts by landing time, and the stem of the uploaded file's name lets a clerk find theirs.
    The stem is always a safe key segment, whatever the file was called: NFC, every run of
    characters other than letters (any script), digits and ``-`` replaced by ``_``, at most
    :data:`RECEIPT_STEM_CHARS` characters."""
    name = unicodedata.normalize("NFC", file)
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    safe = _UNSAFE_NAME_CHARS.sub("_", stem).strip("_")[:RECEIPT_STEM_CHARS] or "upload"
    return f"{LANDING_PREFIX}{region}/{RECEIPTS_DIR}/{upload_id}_{safe}.{ext}"


def raw_key(region: str, dataset: str, sha256: str, ext: str) -> str:
    """Content-addressed archive of an upload's exact bytes."""
    return f"{RAW_PREFIX}{region}/{dataset}/{sha256}.{ext}"


def raw_meta_key(region: str, dataset: str, sha256: str, ext: str) -> str:
    return raw_key(region, dataset, sha256, ext) + ".meta.json"


def claim_key(dataset: str, region: str, batch_id: str) -> str:
    """The ingest claim on one upload, created once by the worker that processes it."""
    return f"{CLAIMS_PREFIX}{dataset}/{region}/{batch_id}.json"


def seen_key(landing_key: str, version: str) -> str:
    """Marks one version of a landing object as processed, so that listing the markers once
    per run finds the pending uploads without re-reading and re-hashing every file."""
    digest = hashlib.sha256(f"{landing_key}\n{version}".encode()).hexdigest()
    return f"{SEEN_PREFIX}{digest}.json"


def batch_record_key(dataset: str, region: str, batch_id: str) -> str:
    """A batch's record; its presence commits the batch's staged and quarantined files."""
    return f"{BATCHES_PREFIX}{dataset}/{region}/{batch_id}.json"


def held_key(dataset: str, region: str, batch_id: str) -> str:
    """The held index's key of a batch the gate held."""
    return f"{HELD_PREFIX}{dataset}/{region}/{batch_id}.json"


def release_key(dataset: str, region: str, batch_id: str) -> str:
    """Who released a held batch, when and why."""
    return f"{RELEASES_PREFIX}{dataset}/{region}/{batch_id}.json"


def journal_key(stamp: str, kind: str, dataset: str, region: str, batch_id: str) -> str:
    """A journal entry: ``stamp`` (UTC, to the microsecond) first, so keys sort by writing time."""
    return f"{JOURNAL_PREFIX}{stamp}-{kind}-{dataset}-{region}-{batch_id}.json"


def state_part_key(generation: str, dataset: str, region: str) -> str:
    """The rows in effect of one dataset and region, as written by state ``generation``."""
    return f"{STATE_PREFIX}{generation}/{dataset}/{region}.parquet"


def staged_prefix(dataset: str, region: str, batch_id: str) -> str:
    return f"{STAGED_PREFIX}{dataset}/region={region}/batch={batch_id}/"


def quarantine_prefix(dataset: str, region: str, batch_id: str) -> str:
    return f"{QUARANTINE_PREFIX}{dataset}/region={region}/batch={batch_id}/"


_BATCH_FOLDERS = re.compile(
    rf"^(?:(?:{STAGED_PREFIX}|{QUARANTINE_PREFIX})([^/]+)/region=([^/]+)/batch=([^/]+)"
    rf"|{BATCH_DOCS_PREFIX}([^/]+)/([^/]+)/([^/]+))/"
)


def batch_of_key(key: str) -> tuple[str, str, str] | None:
    """``(dataset, region, batch_id)`` of a key inside a batch's staged or quarantined folder or
    its batch-gate Data Docs; None for any other key."""
    match = _BATCH_FOLDERS.match(key)
    if match is None:
        return None
    groups = [g for g in match.groups() if g is not None]
    return groups[0], groups[1], groups[2]


def snapshot_prefix(snapshot_id: str) -> str:
    return f"{SNAPSHOTS_PREFIX}{snapshot_id}/"


def snapshot_table_path(table: str) -> str:
    """A published table's data file, relative to its snapshot folder."""
    return f"{table}.parquet"


def snapshot_contract_path(table: str) -> str:
    """The copy of a published table's ODCS contract, relative to its snapshot folder."""
    return f"contracts/{table}.odcs.yaml"


def manifest_key(snapshot_id: str) -> str:
    return f"{SNAPSHOTS_PREFIX}{snapshot_id}/_manifest.json"


def log_key(seq: int) -> str:
    return f"{LOG_PREFIX}{seq:020d}.json"


def report_prefix(snapshot_id: str) -> str:
    return f"{REPORTS_PREFIX}{snapshot_id}/"


def report_key(snapshot_id: str) -> str:
    """A snapshot's HTML report."""
    return report_prefix(snapshot_id) + PAGE_FILE


def chart_runtime_key(version: str) -> str:
    """The stored copy of the reports' chart runtime of ``version`` (a name of the bundle's
    versions, e.g. ``vl-convert-1.9.0-vega-lite-v6_4``)."""
    return f"{CHART_RUNTIME_PREFIX}{version}.js"


def reports_index_key() -> str:
    """The page listing every snapshot's report, newest first: where a reader starts."""
    return REPORTS_PREFIX + PAGE_FILE


def reports_list_key() -> str:
    """The list the reports' index page is rendered from (:mod:`registry.report.index`)."""
    return REPORTS_PREFIX + "index.json"


def dictionary_key(snapshot_id: str) -> str:
    """A snapshot's data dictionary (its tables' contracts as one page), beside its report. Not
    an ``index.html``: the report links those as Data Docs sites."""
    return report_prefix(snapshot_id) + "dictionary.html"


def batch_docs_prefix(dataset: str, region: str, batch_id: str) -> str:
    """The Data Docs of a staged batch's gate run."""
    return f"{BATCH_DOCS_PREFIX}{dataset}/{region}/{batch_id}/{DATA_DOCS_DIR}"


def registry_docs_prefix(snapshot_id: str) -> str:
    """The Data Docs of the registry gate of a published snapshot (linked from its report)."""
    return report_prefix(snapshot_id) + DATA_DOCS_DIR


def refused_docs_prefix(snapshot_id: str) -> str:
    """The Data Docs of a registry gate that refused the would-be snapshot ``snapshot_id``."""
    return f"{REFUSED_PREFIX}{snapshot_id}/{DATA_DOCS_DIR}"


def scorecard_key(region: str, run_id: str) -> str:
    """A region's data-quality scorecard of one ingest run."""
    return f"{SCORECARDS_PREFIX}{region}/{run_id}.json"


def latest_scorecard_key(region: str) -> str:
    """A copy of the region's scorecard of the latest ingest run."""
    return f"{SCORECARDS_PREFIX}{region}/latest.json"
