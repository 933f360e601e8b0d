"""The publisher killed with SIGKILL at each step of the protocol, in a subprocess: latest still
verifies, `registry gc --grace 0` removes the orphans, and the next publish completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from staged_rows import AS_OF, merchant, stage_batch, stage_three_regions, uscc
from typer.testing import CliRunner

from registry.cli import app
from registry.config.crashpoints import PUBLISH_CRASH_STEPS as CRASH_STEPS
from registry.config.crashpoints import STATE_CRASH_STEPS
from registry.publish import publish_snapshot
from registry.publish.state import read_pointer
from registry.publish.tables import snapshot_tables
from registry.snapshot.reader import open_snapshot, read_latest, read_log, verify_snapshot
from registry.storage import LocalStorage, S3Storage, Storage
from registry.storage.layout import SNAPSHOTS_PREFIX

CHILD = """
import sys
from datetime import date
from registry.publish import publish_snapshot
from registry.config.settings import load_settings
from registry.storage import open_storage
settings = load_settings()
publish_snapshot(open_storage(settings), settings, as_of=date.fromisoformat(sys.argv[1]))
"""


def env_for(storage: Storage, s3_settings=None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REGISTRY_"))}
    if isinstance(storage, S3Storage):
        env.update(
            REGISTRY_STORAGE_URI=storage.root_uri,
            AWS_ENDPOINT_URL=s3_settings.aws_endpoint_url,
            AWS_ACCESS_KEY_ID=s3_settings.aws_access_key_id,
            AWS_SECRET_ACCESS_KEY=s3_settings.aws_secret_access_key.get_secret_value(),
            AWS_REGION=s3_settings.aws_region,
        )
    else:
        env["REGISTRY_STORAGE_URI"] = storage.root_uri
    env.update(extra)
    return env


def folders(storage: Storage) -> set[str]:
    return {i.key[len(SNAPSHOTS_PREFIX):].split("/", 1)[0] for i in storage.list(SNAPSHOTS_PREFIX)}


def crash_and_recover(storage: Storage, settings, step: str, env: dict[str, str],
                      monkeypatch) -> None:
    stage_three_regions(storage)
    first = publish_snapshot(storage, settings, as_of=AS_OF)
    stage_batch(storage, "merchants", "ZJ", "20261201T000000Z-zj9",
                [merchant(filing_id="ZJ-2", uscc=uscc("33", 2), city="宁波")])

    child = subprocess.run(
        [sys.executable, "-c", CHILD, (AS_OF + timedelta(days=1)).isoformat()],
        env={**env, "REGISTRY_CRASH_AT": step}, capture_output=True, text=True, timeout=180,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]

    committed = step in ("after_log_entry", "after_latest")
    pointer = read_latest(storage)[0]
    assert pointer.snapshot_id == (first.snapshot_id if step != "after_latest"
                                   else read_log(storage)[-1].snapshot_id)
    assert verify_snapshot(storage) == []
    assert len(folders(storage)) == 2
    assert len(read_log(storage)) == (2 if committed else 1)

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["gc", "--grace", "0"])
    assert result.exit_code == 0, result.output
    assert ("removed 1 uncommitted" in result.output) is not committed
    # Uncommitted work is gone; a committed entry has been rolled forward to latest.
    assert len(folders(storage)) == (2 if committed else 1)
    assert first.snapshot_id in folders(storage)
    assert read_latest(storage)[0].seq == len(read_log(storage))
    assert CliRunner().invoke(app, ["verify"]).exit_code == 0

    again = publish_snapshot(storage, settings, as_of=AS_OF + timedelta(days=2))
    assert again.seq == len(read_log(storage)) and verify_snapshot(storage) == []
    assert again.rows["merchants"] == 5


@pytest.mark.parametrize("step", CRASH_STEPS)
def test_publisher_killed_at_each_step_on_local_storage(tmp_path, settings, step, monkeypatch,
                                                        record_property):
    storage = LocalStorage(tmp_path / "root")
    crash_and_recover(storage, settings, step, env_for(storage), monkeypatch)
    record_property("publish_crash_points_killed", 1)


@pytest.mark.parametrize("step", ["after_data_files", "after_manifest"])
def test_publisher_killed_on_s3(s3_settings, s3_bucket, settings, step, monkeypatch,
                                record_property):
    storage = S3Storage(f"s3://{s3_bucket}/root", s3_settings)
    crash_and_recover(storage, settings, step, env_for(storage, s3_settings), monkeypatch)
    record_property("publish_crash_points_killed", 1)


def test_an_unknown_crash_step_is_refused(tmp_path, settings):
    with pytest.raises(ValueError, match="not a step"):
        publish_snapshot(LocalStorage(tmp_path), settings.model_copy(
            update={"crash_at": "after_lunch"}), as_of=AS_OF)


@pytest.mark.parametrize("step", STATE_CRASH_STEPS)
def test_publisher_killed_while_committing_the_current_state(tmp_path, settings, step,
                                                             monkeypatch):
    """Killed after the state's files (pointer not moved) or after its pointer (snapshot not
    built): latest is untouched, the next publication gives the files a full rebuild gives,
    and gc removes the state files no pointer names."""
    storage = LocalStorage(tmp_path / "root")
    stage_three_regions(storage)
    first = publish_snapshot(storage, settings, as_of=AS_OF)
    before = read_pointer(storage)[0]
    stage_batch(storage, "merchants", "ZJ", "20261201T000000Z-zj9",
                [merchant(filing_id="ZJ-2", uscc=uscc("33", 2), city="宁波")])
    child = subprocess.run(
        [sys.executable, "-c", CHILD, (AS_OF + timedelta(days=1)).isoformat()],
        env={**env_for(storage), "REGISTRY_CRASH_AT": step}, capture_output=True, text=True,
        timeout=180,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert read_latest(storage)[0].snapshot_id == first.snapshot_id
    assert len(read_log(storage)) == 1
    moved = read_pointer(storage)[0]
    assert (moved == before) is (step == "after_state_files")

    for key, value in env_for(storage).items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(app, ["gc", "--grace", "0"])
    assert result.exit_code == 0, result.output
    assert "current-state file(s)" in result.output  # the dead publisher's, or the superseded
    again = publish_snapshot(storage, settings, as_of=AS_OF + timedelta(days=1))
    assert again.rows["merchants"] == 5 and verify_snapshot(storage) == []
    rebuilt = snapshot_tables(storage, settings, AS_OF + timedelta(days=1), first.snapshot_id,
                              full=True)
    published = open_snapshot(storage, again.snapshot_id)
    assert published.merchants.collect().equals(rebuilt.tables["merchants"])
