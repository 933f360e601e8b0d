"""The publication commands as a user runs them (REGISTRY_STORAGE_URI set, local storage)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fixtures.council_files import COUNCIL_UPLOADS, FIXTURES
from staged_rows import AS_OF, merchant, stage_batch, stage_three_regions, uscc
from typer.testing import CliRunner

from registry.cli import app
from registry.publish import publish_snapshot
from registry.storage import LocalStorage
from registry.storage.layout import SNAPSHOTS_PREFIX

runner = CliRunner()


@pytest.fixture
def world(tmp_path, monkeypatch, settings):
    storage = LocalStorage(tmp_path / "root")
    monkeypatch.setenv("REGISTRY_STORAGE_URI", storage.root_uri)
    stage_three_regions(storage)
    first = publish_snapshot(storage, settings, as_of=AS_OF)
    stage_batch(storage, "merchants", "SH", "20261201T000000Z-sh9",
                [merchant(filing_id="SH-1")], mode="replace")
    second = publish_snapshot(storage, settings, as_of=AS_OF + timedelta(days=1))
    return storage, first.snapshot_id, second.snapshot_id


def test_snapshots_show_and_explain_a_merchant(world):
    _, first, second = world
    listed = runner.invoke(app, ["snapshots", "--json"])
    assert listed.exit_code == 0
    assert [s["snapshot_id"] for s in json.loads(listed.output)] == [first, second]

    shown = json.loads(runner.invoke(app, ["show", "--json"]).output)
    assert shown["snapshot_id"] == second and shown["previous_snapshot"] == first

    explained = runner.invoke(app, ["show", "--snapshot", first, "--uscc", uscc("31", 2)])
    assert explained.exit_code == 0
    assert "score 77.0 = compliance 30.0 + complaints 27.0 + quality 20.0" in explained.output
    assert "1 unresolved" in explained.output and "grade B" in explained.output

    revoked = json.loads(runner.invoke(app, ["show", "--uscc", uscc("31", 1), "--json"]).output)
    assert revoked["trusted"] is False and revoked["disqualifications"] == ["status_revoked"]

    missing = runner.invoke(app, ["show", "--uscc", uscc("31", 3)])  # withdrawn by SH
    assert missing.exit_code == 1


def test_diff_lists_what_changed_between_two_snapshots(world):
    _, first, second = world
    result = runner.invoke(app, ["diff", first, "--to", second, "--json"])
    changes = {c["uscc"]: c["change"] for c in json.loads(result.output)}
    assert changes == {uscc("31", 2): "removed", uscc("31", 3): "removed"}
    assert "removed 2" in runner.invoke(app, ["diff", first]).output  # to latest


def test_verify_exits_non_zero_on_a_mismatch(world):
    storage, first, _ = world
    assert runner.invoke(app, ["verify"]).exit_code == 0
    assert runner.invoke(app, ["verify", first]).exit_code == 0
    key = f"{SNAPSHOTS_PREFIX}{first}/merchants.parquet"
    storage.write_bytes(key, storage.read_bytes(key)[:-10])
    bad = runner.invoke(app, ["verify", first])
    assert bad.exit_code == 1 and "merchants.parquet" in bad.output
    assert runner.invoke(app, ["verify", "20990101T000000Z-00000000"]).exit_code == 1


def test_rollback_and_gc(world):
    _, first, _ = world
    result = runner.invoke(app, ["rollback", first, "--reason", "SH list was truncated"])
    assert result.exit_code == 0 and f"latest is now {first}" in result.output
    assert json.loads(runner.invoke(app, ["show", "--json"]).output)["snapshot_id"] == first
    assert runner.invoke(app, ["rollback", first]).exit_code == 1  # already latest
    gc = runner.invoke(app, ["gc", "--grace", "0"])
    assert gc.exit_code == 0 and "removed 0 uncommitted and 0 expired" in gc.output


def test_publish_runs_the_flow(tmp_path, monkeypatch):
    storage = LocalStorage(tmp_path / "root")
    monkeypatch.setenv("REGISTRY_STORAGE_URI", storage.root_uri)
    # The ephemeral API server logs its shutdown after pytest has closed the captured streams.
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    stage_three_regions(storage)
    result = runner.invoke(app, ["publish", "--as-of", "2026-11-30"])
    assert result.exit_code == 0, result.output
    assert "published snapshot" in result.output and "as_of 2026-11-30" in result.output
    assert runner.invoke(app, ["verify"]).exit_code == 0
    # A usage error, told before any Prefect server starts.
    assert runner.invoke(app, ["publish", "--as-of", "30/11/2026"]).exit_code == 64


def test_run_ingests_council_files_then_publishes(tmp_path, monkeypatch):
    """The pipeline end to end on the ingest fixtures: what ingestion stages, the build reads."""
    monkeypatch.setenv("REGISTRY_STORAGE_URI", (tmp_path / "root").as_uri())
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    for name, region, dataset in COUNCIL_UPLOADS:
        result = runner.invoke(app, ["upload", str(FIXTURES / name), "--region", region,
                                     "--dataset", dataset])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["run", "--as-of", "2025-03-01"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["verify"]).exit_code == 0
    manifest = json.loads(runner.invoke(app, ["show", "--json"]).output)
    assert len(manifest["input_batches"]) == len(COUNCIL_UPLOADS)
    assert manifest["summary"]["rows"]["merchants"] > 0
    assert manifest["summary"]["rows"]["products"] > 0
