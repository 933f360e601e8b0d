"""An ingest worker killed with SIGKILL at every step of its protocol
(registry.config.crashpoints.INGEST_CRASH_STEPS),
in a subprocess. Afterwards the next run, once the dead worker's claim has lapsed, finishes the
upload exactly once (one batch, its rows staged and quarantined once, one receipt), a publish
verifies, and `registry gc --grace 0` leaves no orphan. gc leaves a live claim's files alone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from fixtures.council_files import FIXTURES
from typer.testing import CliRunner

from registry import ledger
from registry.cli import app
from registry.config.crashpoints import INGEST_CRASH_STEPS as CRASH_STEPS
from registry.config.settings import Settings
from registry.ingest.pipeline import ingest_object, ingest_pending, list_pending
from registry.publish import collect_garbage, publish_snapshot
from registry.snapshot.reader import verify_snapshot
from registry.storage import LocalStorage, Storage, layout

KEY = "landing/SH/merchants/2024Q2/备案汇总.csv"
FIXTURE, ROWS, ACCEPTED = "merchants_sh_gb18030.csv", 10, 4
CHILD = """
from registry.ingest.pipeline import ingest_pending
from registry.config.settings import load_settings
from registry.storage import open_storage
settings = load_settings()
ingest_pending(open_storage(settings), settings)
"""
# The committed steps: the batch record exists, so the next run finishes without waiting.
COMMITTED = CRASH_STEPS[CRASH_STEPS.index("after_batch_record"):]
LEASE_S = 0.5


def _keys(storage: Storage, prefix: str) -> list[str]:
    return [info.key for info in storage.list(prefix)]


def _batch_folders(storage: Storage) -> set[str]:
    return {k.rsplit("/", 1)[0] for p in ("staged/", "quarantine/", "reports/batches/")
            for k in _keys(storage, p)}


def _no_orphans(storage: Storage) -> None:
    """Every batch file is committed by a record; every snapshot folder by a log entry."""
    records = {batch_id for _, _, batch_id in ledger.committed_refs(storage)}
    for folder in _batch_folders(storage):
        assert any(batch_id in folder for batch_id in records), folder
    committed = {json.loads(storage.read_bytes(k))["snapshot_id"]
                 for k in _keys(storage, layout.LOG_PREFIX)}
    snapshots = {k.split("/")[2] for k in _keys(storage, layout.SNAPSHOTS_PREFIX)}
    assert snapshots == committed
    reports = {k.split("/")[1] for k in _keys(storage, "reports/")}
    assert {r for r in reports if r[:8].isdigit()} <= committed


def _run_gc(storage: Storage, monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    monkeypatch.setenv("REGISTRY_STORAGE_URI", storage.root_uri)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["gc", "--grace", "0"])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[LocalStorage, int, str]]:
    """One storage root per step, each holding the upload and what a worker killed at that
    step left; the workers run side by side (each is a process of its own anyway)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REGISTRY_"))}
    roots, children = {}, {}
    for step in CRASH_STEPS:
        storage = LocalStorage(tmp_path_factory.mktemp(step) / "root")
        storage.write_bytes(KEY, (FIXTURES / FIXTURE).read_bytes())
        roots[step] = storage
        children[step] = subprocess.Popen(
            [sys.executable, "-c", CHILD],
            env={**env, "REGISTRY_STORAGE_URI": storage.root_uri, "REGISTRY_CRASH_AT": step},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
    out = {}
    for step, child in children.items():
        _, stderr = child.communicate(timeout=300)
        out[step] = (roots[step], child.returncode, stderr)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("step", CRASH_STEPS)
def test_ingest_killed_at_each_step_is_finished_exactly_once_by_the_next_run(
    crashed, step: str, monkeypatch: pytest.MonkeyPatch, record_property
) -> None:
    storage, returncode, stderr = crashed[step]
    assert returncode == -signal.SIGKILL, stderr[-2000:]
    assert f"REGISTRY_CRASH_AT={step}" in stderr
    assert _keys(storage, "raw/SH/merchants/")  # archived before anything else
    assert list_pending(storage, Settings(_env_file=None)) == [KEY]

    # gc while the dead worker's claim is still within its lease removes none of its files.
    before = _batch_folders(storage)
    assert "uncommitted batch" not in _run_gc(storage, monkeypatch)
    assert _batch_folders(storage) == before

    if step not in (*COMMITTED, "after_archive"):
        # The next run leaves a live claim to its worker; once it lapses, it takes over.
        results = ingest_pending(storage, Settings(_env_file=None)).results
        assert [r.status for r in results] == ["in_progress"]
        time.sleep(LEASE_S)
    settings = Settings(_env_file=None, ingest_claim_lease_s=LEASE_S)
    results = ingest_pending(storage, settings).results
    assert [(r.status, r.rows_in, r.accepted, r.quarantined) for r in results] == [
        ("staged", ROWS, ACCEPTED, ROWS - ACCEPTED)]
    batch_id = results[0].batch_id
    assert ingest_pending(storage, settings).results == []  # nothing left to do

    # Exactly once: one claim, one batch, each input row staged or quarantined once, one
    # receipt. The batch id is the upload's: when it landed and which bytes it holds.
    assert batch_id == ledger.batch_id_for(storage.head(KEY).last_modified, results[0].sha256)
    assert ledger.committed_refs(storage) == {("merchants", "SH", batch_id)}
    (record,) = ledger.batch_records(storage)
    assert (record.source_key, record.same_as, record.accepted) == (KEY, None, ACCEPTED)
    staged = storage.read_parquet(layout.staged_prefix("merchants", "SH", batch_id)
                                  + "part-0.parquet")
    quarantined = storage.read_parquet(layout.quarantine_prefix("merchants", "SH", batch_id)
                                       + "part-0.parquet")
    rows = sorted([*staged["_source_row"], *quarantined["_source_row"]])
    assert rows == sorted(set(rows)) and len(rows) == ROWS
    assert (staged.height, quarantined.height) == (ACCEPTED, ROWS - ACCEPTED)
    receipts = _keys(storage, "landing/SH/_receipts/")
    assert [k.rsplit(".", 1)[1] for k in receipts] == ["csv", "json"]
    receipt = json.loads(storage.read_bytes(receipts[1]))
    assert (receipt["status"], receipt["batch_id"], receipt["accepted"]) == (
        "partially_accepted", batch_id, ACCEPTED)
    (claim,) = ledger.claims(storage)
    assert claim.batch_id == batch_id
    assert (claim.state, claim.outcome.status, claim.outcome.batch_id) == (
        "done", "staged", batch_id)
    # A claim the dead worker left unfinished was taken over once; none was made twice.
    assert claim.takeovers == (0 if step in ("after_archive", "after_ledger_done") else 1)

    published = publish_snapshot(storage, settings)
    assert published.seq == 1 and verify_snapshot(storage) == []
    _run_gc(storage, monkeypatch)
    _no_orphans(storage)
    assert verify_snapshot(storage) == []
    record_property("ingest_crash_points_killed", 1)
    record_property("ingest_rows_lost", ROWS - len(rows))


def test_gc_removes_a_batch_whose_worker_died_and_whose_file_was_withdrawn(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upload deleted from landing/ after its worker died is never taken over: once the
    claim has lapsed, its staged and quarantined files are orphans that gc removes, and the raw
    archive stays."""
    storage = LocalStorage(tmp_path / "root")
    storage.write_bytes(KEY, (FIXTURES / FIXTURE).read_bytes())
    settings = Settings(_env_file=None, ingest_claim_lease_s=60)

    # What a worker dying just before the commit leaves: files, a claim, no record.
    def died(*_: object) -> None:
        raise RuntimeError("worker died before the commit")

    with monkeypatch.context() as patched:
        patched.setattr(ledger, "commit_batch", died)
        with pytest.raises(RuntimeError, match="before the commit"):
            ingest_object(storage, settings, KEY)
    assert ledger.committed_refs(storage) == set()
    (batch_id,) = {k.split("batch=")[1].split("/")[0] for k in _keys(storage, "staged/")}
    assert ledger.read_claim(storage, "merchants", "SH", batch_id)[0].state == "claimed"
    storage.delete(KEY)

    live = collect_garbage(storage, settings, grace_seconds=0)
    assert live.batches_removed == [] and len(_batch_folders(storage)) >= 2
    lapsed = collect_garbage(storage, settings, grace_seconds=0,
                             now=datetime.now(UTC) + timedelta(seconds=61))
    assert lapsed.batches_removed == [batch_id]
    assert _batch_folders(storage) == set()
    assert _keys(storage, "raw/SH/merchants/")
