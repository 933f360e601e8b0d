"""``registry demo`` as a new user runs it: a fresh process, the embedded Prefect API, the storage
root from REGISTRY_STORAGE_URI on local disk. The same flows on S3, through a real Prefect
server and worker: tests/orchestration/test_prefect_deployments.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from contract_checks import table_failures

from registry import ledger
from registry.config.published import load_published_contracts
from registry.config.regions import load_regions
from registry.config.settings import PROJECT_ROOT
from registry.snapshot.reader import open_snapshot, verify_snapshot
from registry.storage import LocalStorage, Storage
from registry.storage.layout import landing_prefix

pytestmark = pytest.mark.slow
REGIONS = set(load_regions(PROJECT_ROOT / "config").regions)


def _demo(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registry.cli", "demo"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "CI": "true",
             "COLUMNS": "160", **env},
    )


def _batches(storage: Storage) -> list[ledger.BatchRecord]:
    return ledger.batch_records(storage)


def _assert_demo_published(storage: Storage, output: str) -> None:
    assert verify_snapshot(storage) == []
    snap = open_snapshot(storage)
    batches = _batches(storage)
    # Every region uploaded every dataset, in several files, in several formats.
    assert {(b.region, b.dataset) for b in batches} == {
        (r, d) for r in REGIONS
        for d in ("merchants", "complaints", "inspections", "gift_evaluations")}
    assert {b.format for b in batches} >= {"csv", "xlsx"}
    assert "gb18030" in {b.encoding for b in batches}
    assert set(snap.manifest.input_batches) == {b.batch_id for b in batches}
    per_region: dict[str, Counter[str]] = {}
    for b in batches:
        per_region.setdefault(b.region, Counter()).update(
            rows_in=b.rows_in, quarantined=b.quarantined, accepted=b.accepted)
    for region, counts in per_region.items():
        assert counts["rows_in"] == counts["accepted"] + counts["quarantined"]
        assert counts["rows_in"] > 2000, region
        assert 0.02 < counts["quarantined"] / counts["rows_in"] < 0.05, (region, counts)
    merchants = snap.merchants.collect()
    listed = set(merchants.get_column("regions").explode())
    assert listed == REGIONS
    assert merchants.filter(pl.col("trusted")).height > 0.3 * merchants.height
    assert snap.products.collect().height > 100
    # What the user is told: where the snapshot and the report are, trusted by grade.
    assert f"published snapshot {snap.snapshot_id}" in output
    assert f"registry/snapshots/{snap.snapshot_id}" in output
    assert f"reports/{snap.snapshot_id}/index.html" in output
    assert "trusted by grade" in output


def test_demo_on_local_storage(tmp_path):
    # `make demo` on a new machine. Sending the same bytes again (a duplicate, which changes
    # nothing) is a council's story: tests/stories/test_story_exactly_once.py.
    root = tmp_path / "root"
    first = _demo(tmp_path, {"REGISTRY_STORAGE_URI": root.as_uri()})
    assert first.returncode == 0, first.stderr[-3000:]
    # Quiet by default: no telemetry attempt and no log lines (Prefect's, Great Expectations'
    # temporary directories, the temporary server's missing concurrency limit), only progress.
    assert not re.search(r"telemetry|temporary directory|\| (INFO|WARNING|ERROR) ",
                         first.stderr), first.stderr[-3000:]
    storage = LocalStorage(root)
    _assert_demo_published(storage, first.stdout)
    assert (root / "reports").is_dir()
    # Every table passes `datacontract test` against its published contract on realistic data.
    snap = open_snapshot(storage)
    for table, contract in load_published_contracts().items():
        assert table_failures(contract.raw, root / snap.key(table)) == [], table
    uploads = [i.key for i in storage.list(landing_prefix("SH", "merchants"))]
    assert len(uploads) == 1 and "/demo-" in uploads[0]


def test_the_cli_waits_for_a_first_temporary_prefect_server_unless_told_otherwise():
    # A first run on a fresh machine creates Prefect's database while its temporary server
    # starts: Prefect's own 20 s limit failed the demo on a busy two-core machine.
    probe = ("import registry.cli\n"
             "from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as s\n"
             "print(s.value())")
    env = {k: v for k, v in os.environ.items()
           if k != "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"}
    default = subprocess.run([sys.executable, "-c", probe], env=env, check=True,
                             capture_output=True, text=True)
    assert float(default.stdout) >= 120
    chosen = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True,
        env={**env, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "33"})
    assert float(chosen.stdout) == 33


def test_the_demo_table_counts_a_held_batch_as_held_not_staged():
    from pathlib import Path

    from registry.demo import DemoUpload, demo_summary
    from registry.demo.samples import SampleFile
    from registry.ingest.pipeline import IngestSummary, UploadResult

    def upload(key: str) -> DemoUpload:
        return DemoUpload(key, SampleFile("SH", "merchants", Path(key), "csv", 10, 1))

    uploads = [upload("landing/SH/merchants/a.csv"), upload("landing/SH/merchants/b.csv")]
    ingested = IngestSummary([
        UploadResult(uploads[0].key, "SH", "merchants", "staged", rows_in=10, accepted=9,
                     quarantined=1),
        UploadResult(uploads[1].key, "SH", "merchants", "staged", rows_in=10, accepted=9,
                     quarantined=1, held=True),
    ])
    sh = demo_summary(uploads, ingested)["SH"]
    assert (sh.uploads, sh.staged, sh.held) == (2, 1, 1)
