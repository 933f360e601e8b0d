"""The JSON formats of a published snapshot, and the errors of reading one.

The manifest (``registry/snapshots/{id}/_manifest.json``), the commit-log entry
(``registry/_log/{seq:020d}.json``) and the ``registry/latest.json`` pointer are the pydantic
models below (docs/architecture.md §11). ``registry.publish`` writes them and
:mod:`registry.snapshot.reader` reads them.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from registry.storage.layout import snapshot_table_path

# Format 2 adds the data contracts a snapshot carries (``data_contracts``). Format 1 manifests,
# written before, still read: they carry none.
MANIFEST_FORMAT = "yrd-registry-snapshot/2"
MANIFEST_FORMATS = ("yrd-registry-snapshot/1", MANIFEST_FORMAT)


class SnapshotError(Exception):
    """A snapshot cannot be opened: missing, unknown, or not what its manifest promises."""


class SnapshotIntegrityError(SnapshotError):
    """A file's checksum, size or row count differs from the manifest (or the manifest from
    the pointer that names it). ``problems`` lists each one."""

    def __init__(self, snapshot_id: str, problems: list[str]):
        self.snapshot_id = snapshot_id
        self.problems = problems
        super().__init__(f"snapshot {snapshot_id} does not verify: " + "; ".join(problems))


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_json_bytes(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n"
                ).encode("utf-8")


class FileEntry(_Model):
    """A data file of a snapshot; ``path`` is relative to the snapshot folder."""

    path: str
    sha256: str
    bytes: int
    rows: int


class ContractEntry(_Model):
    """The ODCS data contract of a published table, as the snapshot carries it: ``path`` is
    relative to the snapshot folder (``contracts/{table}.odcs.yaml``)."""

    table: str
    version: str
    path: str
    sha256: str
    bytes: int


class ScoreModelRef(_Model):
    version: int
    sha256: str


class Manifest(_Model):
    """``registry/snapshots/{id}/_manifest.json``: written after the data files."""

    format: Literal["yrd-registry-snapshot/1", "yrd-registry-snapshot/2"] = MANIFEST_FORMAT
    snapshot_id: str
    as_of: date
    published_at: datetime
    previous_snapshot: str | None
    code_version: str
    contract_versions: dict[str, str]
    output_contract_versions: dict[str, int]
    score_model: ScoreModelRef
    suite_versions: dict[str, str]
    input_batches: list[str]
    files: list[FileEntry]
    summary: dict[str, dict[str, int]]
    data_contracts: list[ContractEntry] = []

    def file(self, table: str) -> FileEntry:
        for entry in self.files:
            if entry.path == snapshot_table_path(table):
                return entry
        raise SnapshotError(f"snapshot {self.snapshot_id} has no table {table!r}")

    def data_contract(self, table: str) -> ContractEntry:
        for entry in self.data_contracts:
            if entry.table == table:
                return entry
        raise SnapshotError(
            f"snapshot {self.snapshot_id} carries no data contract for {table!r}"
            + ("" if self.data_contracts else " (published before snapshots carried them)")
        )


class LogEntry(_Model):
    """``registry/_log/{seq:020d}.json``, created once. ``action`` ``publish`` commits a new
    snapshot; ``rollback`` points latest back at an earlier one. ``previous_snapshot`` is what
    latest pointed at before this entry."""

    seq: int
    action: Literal["publish", "rollback"]
    snapshot_id: str
    manifest: str
    manifest_sha256: str
    as_of: date
    previous_snapshot: str | None
    committed_at: datetime
    reason: str | None = None


class LatestPointer(_Model):
    """``registry/latest.json``: the log entry whose snapshot is current."""

    seq: int
    snapshot_id: str
    manifest: str
    manifest_sha256: str
    as_of: date
    updated_at: datetime


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
