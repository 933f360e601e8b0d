"""Where everything lives under the storage root. Only keys, no I/O.

Keys under ``ledger/`` are read and written by :mod:`registry.ledger` alone."""

from __future__ import annotations

import hashlib

DATASETS = ("merchants", "complaints", "inspections", "gift_evaluations")

RECEIPTS_DIR = "_receipts"
LATEST_KEY = "registry/latest.json"
SNAPSHOTS_PREFIX = "registry/snapshots/"
LOG_PREFIX = "registry/_log/"
CLAIMS_PREFIX = "ledger/ingest/"
BATCHES_PREFIX = "ledger/batches/"
RELEASES_PREFIX = "ledger/releases/"
SEEN_PREFIX = "ledger/seen/"


def landing_prefix(region: str, dataset: str | None = None) -> str:
    """Councils write here and nowhere else."""
    return f"landing/{region}/{dataset}/" if dataset else f"landing/{region}/"


def receipt_key(region: str, upload_id: str, ext: str) -> str:
    return f"landing/{region}/{RECEIPTS_DIR}/{upload_id}.{ext}"


def raw_key(region: str, dataset: str, sha256: str, ext: str) -> str:
    """Content-addressed archive of an upload's exact bytes."""
    return f"raw/{region}/{dataset}/{sha256}.{ext}"


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


def release_key(dataset: str, region: str, batch_id: str) -> str:
    """Who released a held batch, when and why."""
    return f"{RELEASES_PREFIX}{dataset}/{region}/{batch_id}.json"


def staged_prefix(dataset: str, region: str, batch_id: str) -> str:
    return f"staged/{dataset}/region={region}/batch={batch_id}/"


def quarantine_prefix(dataset: str, region: str, batch_id: str) -> str:
    return f"quarantine/{dataset}/region={region}/batch={batch_id}/"


def snapshot_prefix(snapshot_id: str) -> str:
    return f"{SNAPSHOTS_PREFIX}{snapshot_id}/"


def manifest_key(snapshot_id: str) -> str:
    return f"{SNAPSHOTS_PREFIX}{snapshot_id}/_manifest.json"


def log_key(seq: int) -> str:
    return f"{LOG_PREFIX}{seq:020d}.json"


def report_prefix(snapshot_id: str) -> str:
    return f"reports/{snapshot_id}/"
