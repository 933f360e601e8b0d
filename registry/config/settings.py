"""Run-time settings. This module and :mod:`registry.config.storage_settings`, whose fields
:class:`Settings` inherits, are the only ones that read the environment.

Everything else receives a :class:`Settings` (or something derived from it, such as a
:class:`registry.storage.Storage`) as an argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from registry.config.storage_settings import ENV_PREFIX, StorageSettings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# Council staff work in Asia/Shanghai: their "today" is the default as_of, and receipts and
# landing times are shown in it.
COUNCIL_TIMEZONE = ZoneInfo("Asia/Shanghai")


class Settings(StorageSettings, BaseSettings):
    """Settings for one process.

    `REGISTRY_*` variables configure the registry itself; S3 access uses the standard AWS
    variables so that the same credentials work for boto3, polars and the AWS CLI. The storage
    root and the S3 fields are :class:`StorageSettings`' (the reader's), inherited.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    config_dir: Path = Field(
        default=PROJECT_ROOT / "config",
        description="Folder holding regions.yaml and the score model.",
    )
    schemas_dir: Path = Field(
        default=PROJECT_ROOT / "schemas",
        description="Folder holding the dataset contracts.",
    )
    expectations_dir: Path = Field(
        default=PROJECT_ROOT / "expectations",
        description="Folder holding the Great Expectations suites (JSON).",
    )

    # Upload limits: a file over any of these is rejected whole, before it is parsed further.
    max_upload_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    max_rows: int = Field(default=5_000_000, gt=0)
    max_columns: int = Field(default=200, gt=0)
    max_cells: int = Field(default=100_000_000, gt=0)
    max_cell_chars: int = Field(default=10_000, gt=0)
    # An xlsx is a zip: this caps the uncompressed size so a zip bomb is refused unread.
    max_xlsx_uncompressed_bytes: int = Field(default=1024 * 1024 * 1024, gt=0)
    # Every upload is read in a worker process held to these (registry/read_worker.py):
    # past either, the worker is stopped and the file refused (READ_TIME_LIMIT,
    # READ_MEMORY_LIMIT). The memory is the worker's whole data segment, of which the Python
    # runtime and the reader libraries take about 200 MB.
    # Off, uploads are read in the ingest process, with the size limits alone: for trusted
    # sources, without the cost of handing each upload to a worker and its table back.
    read_in_worker: bool = True
    read_time_limit_s: float = Field(default=300.0, gt=0)
    read_memory_limit_mb: int = Field(default=4096, ge=256)

    # Ingestion: a claim on an upload (registry.ledger.IngestClaim) older than this, whose batch
    # was never committed, is taken to be from a crashed worker and is taken over.
    ingest_claim_lease_s: float = Field(default=900.0, gt=0)

    # Publication (docs/architecture.md §10-11).
    score_model_version: int = Field(
        default=1, ge=1, description="Which config/score_model_v{N}.yaml scores the registry."
    )
    snapshot_retention: int = Field(
        default=30,
        ge=2,
        description="Committed snapshots `registry gc` keeps; latest and its predecessor always.",
    )
    publish_range_filings: int = Field(
        default=1_000_000,
        gt=0,
        description="Merchant filings per USCC range: the publisher builds, checks and writes "
        "the merchants and changes tables one range at a time, so its memory follows this, "
        "not the registry's size (docs/architecture.md §11.9).",
    )
    crash_at: str | None = Field(
        default=None,
        description="Test hook: SIGKILL the process at a step named in "
        "registry.config.crashpoints.",
    )

    # Orchestration (docs/architecture.md §14): how the ingest flow fans out over the pending
    # uploads.
    task_runner: Literal["default", "dask"] = Field(
        default="default",
        description="default: Prefect's thread pool in the flow's process; dask: prefect-dask's "
        "DaskTaskRunner, on the cluster at dask_address or else on a local cluster.",
    )
    dask_address: str | None = Field(
        default=None,
        description="Scheduler address of an existing Dask cluster, for task_runner=dask.",
    )
    ingest_threads: int = Field(
        default=2,
        ge=1,
        description="Uploads the default task runner ingests at once. Each holds its file and "
        "its parsed rows in memory, so this bounds the ingest's memory (Prefect's thread pool "
        "is otherwise unbounded: one thread per pending upload).",
    )
    notify_webhook_url: str | None = Field(
        default=None,
        description="Where the Prefect server posts the registry's notifications (held "
        "batches, rejected files, published snapshots): `registry orchestration setup` saves it "
        "as the Webhook block registry-notify.",
    )

    # Set by CI systems (usually CI=true): the CLI writes plain progress lines, never bars.
    ci: str | None = Field(default=None, validation_alias="CI")

    @property
    def in_ci(self) -> bool:
        return (self.ci or "").strip().lower() not in ("", "0", "false", "no")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides taking precedence."""
    return Settings(**overrides)
