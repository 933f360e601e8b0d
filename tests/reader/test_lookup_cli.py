"""`registry lookup` and `registry diff` as a user runs them (REGISTRY_STORAGE_URI set)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from staged_rows import AS_OF, merchant, stage_batch, stage_three_regions, uscc
from typer.testing import CliRunner

from registry.cli import app
from registry.cli.errors import EXIT_USAGE
from registry.config.settings import PROJECT_ROOT, Settings
from registry.publish import publish_snapshot
from registry.storage import LocalStorage

runner = CliRunner()


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Three snapshots, published once for the module: the commands only read them."""
    storage = LocalStorage(tmp_path_factory.mktemp("lookup") / "root")
    settings = Settings(_env_file=None, schemas_dir=PROJECT_ROOT / "schemas")
    stage_three_regions(storage)
    first = publish_snapshot(storage, settings, as_of=AS_OF)
    # SH adds a merchant, then withdraws it with two others: ZJ's and AH's filings remain.
    stage_batch(storage, "merchants", "SH", "20261201T000000Z-sh8",
                [merchant(filing_id="SH-1"), merchant(filing_id="SH-9", uscc=uscc("31", 9))],
                mode="replace")
    second = publish_snapshot(storage, settings, as_of=AS_OF + timedelta(days=1))
    stage_batch(storage, "merchants", "SH", "20261202T000000Z-sh9",
                [merchant(filing_id="SH-1")], mode="replace")
    third = publish_snapshot(storage, settings, as_of=AS_OF + timedelta(days=2))
    return storage, first.snapshot_id, second.snapshot_id, third.snapshot_id


@pytest.fixture
def world(published, monkeypatch):
    monkeypatch.setenv("REGISTRY_STORAGE_URI", published[0].root_uri)
    return published


def test_lookup_prints_the_verdict_in_both_languages(world):
    _, first, _, third = world
    revoked = runner.invoke(app, ["lookup", uscc("31", 1)])  # AH revoked its filing
    assert revoked.exit_code == 0, revoked.output
    assert "verdict   disqualified" in revoked.output
    assert "status_revoked: 某地区的现行备案已被撤销。 / The current filing in some region is " \
           "revoked." in revoked.output
    assert third in revoked.output and "valid until 2027-12-31" in revoked.output

    doc = json.loads(runner.invoke(app, ["lookup", uscc("33", 1), "--json"]).output)
    assert doc["listed"] is True and doc["snapshot_id"] == third
    assert doc["verdict"] in ("trusted", "listed") and doc["disqualifications"] == []
    assert doc["regions"] == ["ZJ"] and doc["merchant"]["uscc"] == uscc("33", 1)
    # An earlier snapshot, and a code typed in lower case with spaces.
    older = json.loads(runner.invoke(
        app, ["lookup", f" {uscc('31', 2).lower()} ", "--snapshot", first, "--json"]).output)
    assert older["listed"] is True and older["grade"] == "B" and older["score"] == 77.0


def test_lookup_of_an_unlisted_merchant_exits_1(world):
    result = runner.invoke(app, ["lookup", uscc("31", 2)])  # withdrawn by SH
    assert result.exit_code == 1
    assert "未列入 / not listed" in result.output
    doc = json.loads(runner.invoke(app, ["lookup", uscc("31", 2), "--json"]).output)
    assert doc == {**doc, "listed": False, "verdict": "unlisted", "uscc": uscc("31", 2)}


@pytest.mark.parametrize("code", ["12345", "91310000MA0000000O", "9131000OMA00000001"])
def test_lookup_of_something_not_a_uscc_is_a_usage_error(world, code):
    result = runner.invoke(app, ["lookup", code], env={"COLUMNS": "250"})  # the box on one line
    assert result.exit_code == EXIT_USAGE
    assert "not a unified social credit code" in result.output


def test_diff_from_an_earlier_snapshot_to_latest_or_to(world):
    _, first, second, third = world
    delta = json.loads(runner.invoke(app, ["diff", first, "--json"]).output)
    # SH-9 came and went between: not in the delta from the first snapshot.
    assert {c["uscc"]: c["change"] for c in delta} == {
        uscc("31", 2): "removed", uscc("31", 3): "removed"}
    step = json.loads(runner.invoke(app, ["diff", first, "--to", second, "--json"]).output)
    assert {c["uscc"]: c["change"] for c in step}[uscc("31", 9)] == "added"
    # An as_of date names the snapshot in effect then.
    assert json.loads(runner.invoke(app, ["diff", AS_OF.isoformat(), "--json"]).output) == delta
    shown = runner.invoke(app, ["diff", first])
    assert shown.exit_code == 0 and f"{first} -> {third}: removed 2" in shown.output
    assert "no changes" in runner.invoke(app, ["diff", third]).output


def test_diff_refuses_unknown_and_later_snapshots(world):
    _, first, _, third = world
    unknown = runner.invoke(app, ["diff", "20990101T000000000000Z-00000000"])
    assert unknown.exit_code == 1 and "unknown snapshot" in unknown.output
    later = runner.invoke(app, ["diff", third, "--to", first])
    assert later.exit_code == 1 and "is later than" in later.output
    assert runner.invoke(app, ["diff", "2026-13-01"]).exit_code == EXIT_USAGE


