"""Scale-out on Dask gives the same results as the default runner: the same eight council uploads
ingested by Prefect's thread pool and by a two-process Dask cluster stage the same rows,
quarantine the same rows and publish the same registry."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest
from fixtures.council_files import FIXTURES

from flows.ingest import ingest_flow, ingest_task_runner
from registry.config.settings import Settings
from registry.ingest.pipeline import IngestSummary, upload_file
from registry.publish import publish_snapshot
from registry.snapshot.reader import open_snapshot
from registry.storage import LocalStorage
from registry.storage.layout import DATASETS

AS_OF = date(2025, 3, 1)
# Eight uploads with distinct bytes: the five council fixtures, one of them again with a
# trailing line (new content, same rows), and two files rejected whole.
UPLOADS = [
    ("merchants_sh_gb18030.csv", "SH", "merchants", b""),
    ("merchants_js_bom.csv", "JS", "merchants", b""),
    ("merchants_js_bom.csv", "JS", "merchants", b"\n"),
    ("complaints_zj.xlsx", "ZJ", "complaints", b""),
    ("inspections_ah.jsonl", "AH", "inspections", b""),
    ("gift_evaluations_zj.parquet", "ZJ", "gift_evaluations", b""),
    ("merchants_unknown_column.csv", "JS", "merchants", b""),
    ("merchants_missing_column.csv", "AH", "merchants", b""),
]
# Lineage that names the run (ingest time, the batch id made from it) rather than the content.
RUN_COLUMNS = ("_ingested_at", "_batch_id")


def _uploaded(root: Path, tmp: Path) -> LocalStorage:
    storage = LocalStorage(root)
    settings = Settings(_env_file=None)
    for i, (name, region, dataset, extra) in enumerate(UPLOADS):
        path = tmp / f"{i}-{name}"
        path.write_bytes((FIXTURES / name).read_bytes() + extra)
        upload_file(storage, settings, path, region=region, dataset=dataset)
    return storage


def _content(storage: LocalStorage, area: str, dataset: str) -> pl.DataFrame | None:
    files = [info.key for info in storage.list(f"{area}/{dataset}/") if info.key.endswith(
        ".parquet")]
    if not files:
        return None
    frame = pl.concat([storage.read_parquet(key) for key in files], how="diagonal_relaxed")
    return frame.drop(RUN_COLUMNS).sort("_source_key", "_source_row")


def _outcomes(summary: IngestSummary) -> list[tuple]:
    return sorted((r.key, r.status, r.rows_in, r.accepted, r.quarantined, r.file_error)
                  for r in summary.results)


@pytest.mark.slow
def test_a_two_process_dask_cluster_ingests_like_the_default_runner(prefect_home, tmp_path,
                                                                    monkeypatch):
    from distributed import LocalCluster
    from prefect import get_client
    from prefect.settings import (
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    default_root, dask_root = tmp_path / "default", tmp_path / "dask"
    (tmp_path / "files").mkdir()
    default_storage = _uploaded(default_root, tmp_path / "files")
    dask_storage = _uploaded(dask_root, tmp_path / "files")

    # The flow's module-level runner comes from the (empty) test environment: the thread pool.
    assert type(ingest_flow.task_runner).__name__ == "ThreadPoolTaskRunner"
    monkeypatch.setenv("REGISTRY_STORAGE_URI", default_storage.root_uri)
    # This flow may start the process's temporary Prefect server on a new database: allowed
    # as long as the registry's commands allow it (registry/cli), not Prefect's 20 s.
    with temporary_settings({PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 180}):
        by_default = ingest_flow()

    # Dask worker processes inherit the environment they are started with: this run's storage,
    # and the API the flow above ran against. Without an API URL each worker would start a
    # temporary Prefect server of its own.
    monkeypatch.setenv("REGISTRY_STORAGE_URI", dask_storage.root_uri)
    with get_client(sync_client=True) as client:
        monkeypatch.setenv("PREFECT_API_URL", str(client.api_url))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        runner = ingest_task_runner(Settings(_env_file=None, task_runner="dask",
                                             dask_address=cluster.scheduler_address))
        assert type(runner).__name__ == "DaskTaskRunner"
        on_dask = ingest_flow.with_options(task_runner=runner)()
        # Every upload's task went through the cluster's scheduler to a worker and back.
        prefix = cluster.scheduler.task_prefixes["ingest_upload"]
        assert prefix.state_counts["memory"] == len(UPLOADS)

    assert _outcomes(on_dask) == _outcomes(by_default)
    assert [r.status for r in by_default.results].count("staged") == 6
    for area in ("staged", "quarantine"):
        for dataset in DATASETS:
            expected = _content(default_storage, area, dataset)
            got = _content(dask_storage, area, dataset)
            assert (got is None) == (expected is None), (area, dataset)
            if expected is not None:
                assert got.equals(expected), (area, dataset)

    settings = Settings(_env_file=None)
    for storage in (default_storage, dask_storage):
        publish_snapshot(storage, settings, as_of=AS_OF)
    a, b = open_snapshot(default_storage), open_snapshot(dask_storage)
    # source_batches name batch ids, which carry the ingest time; everything else must agree.
    assert a.merchants.collect().drop("source_batches").equals(
        b.merchants.collect().drop("source_batches"))
    assert a.products.collect().drop("source_batches").equals(
        b.products.collect().drop("source_batches"))
    assert a.merchants.collect().height > 0
