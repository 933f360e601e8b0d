"""The orchestration contract without a server: the upload event, what happens when it cannot be
sent, the task-runner switch, and prefect.yaml against the names the code uses."""

from __future__ import annotations

import logging
import socket
import time
from fnmatch import fnmatchcase

import pytest
import yaml
from fixtures.council_files import FIXTURES
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner
from pydantic import TypeAdapter
from typer.testing import CliRunner

from flows.ingest import ingest_task_runner
from registry.cli import app
from registry.config.regions import load_regions
from registry.config.settings import PROJECT_ROOT, Settings
from registry.orchestration import (
    UPLOAD_EVENT,
    WORK_POOL,
    emit_upload_created,
    set_up_orchestration,
    upload_event_payload,
    upload_resource_id,
)
from registry.storage import LocalStorage
from registry.storage.layout import DATASETS

PREFECT_YAML = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
DEPLOYMENTS = {d["name"]: d for d in PREFECT_YAML["deployments"]}
REGIONS = list(load_regions(PROJECT_ROOT / "config").regions)


@pytest.fixture
def dead_api_url() -> str:
    """An API URL on loopback where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


def test_the_event_payload_says_where_and_how_big_never_what() -> None:
    assert upload_event_payload("landing/SH/merchants/a.csv", "SH", "merchants", 120) == {
        "key": "landing/SH/merchants/a.csv", "region": "SH", "dataset": "merchants", "size": 120}
    assert upload_resource_id("SH", "merchants") == "registry.landing.SH.merchants"


def test_without_a_server_configured_no_event_is_sent(caplog) -> None:
    caplog.set_level(logging.INFO, logger="registry.orchestration")
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        assert emit_upload_created("landing/SH/merchants/a.csv", "SH", "merchants", 1) is False
    assert "PREFECT_API_URL is not set" in caplog.text


def test_an_unreachable_server_is_logged_and_does_not_raise(caplog, dead_api_url) -> None:
    caplog.set_level(logging.WARNING, logger="registry.orchestration")
    started = time.monotonic()
    with temporary_settings({PREFECT_API_URL: dead_api_url}):
        assert emit_upload_created("landing/SH/merchants/a.csv", "SH", "merchants", 1) is False
    assert time.monotonic() - started < 10
    assert f"{UPLOAD_EVENT} event could not be sent to {dead_api_url}" in caplog.text
    assert "landing/SH/merchants/a.csv" in caplog.text


def test_registry_upload_succeeds_when_the_event_cannot_be_sent(
    tmp_path, monkeypatch, dead_api_url
) -> None:
    storage = LocalStorage(tmp_path / "root")
    monkeypatch.setenv("REGISTRY_STORAGE_URI", storage.root_uri)
    with temporary_settings({PREFECT_API_URL: dead_api_url}):
        result = CliRunner().invoke(app, ["upload", str(FIXTURES / "merchants_js_bom.csv"),
                                          "--region", "JS", "--dataset", "merchants"])
    assert result.exit_code == 0, result.output
    assert storage.read_bytes("landing/JS/merchants/merchants_js_bom.csv") == (
        FIXTURES / "merchants_js_bom.csv").read_bytes()


def test_the_setting_chooses_the_task_runner() -> None:
    assert isinstance(ingest_task_runner(Settings(_env_file=None)), ThreadPoolTaskRunner)
    remote = ingest_task_runner(Settings(_env_file=None, task_runner="dask",
                                         dask_address="tcp://127.0.0.1:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://127.0.0.1:8786"
    local = ingest_task_runner(Settings(_env_file=None, task_runner="dask"))
    assert isinstance(local, DaskTaskRunner) and local.address is None
    with pytest.raises(ValueError):
        Settings(_env_file=None, task_runner="spark")


def test_setup_refuses_a_per_region_limit_below_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        set_up_orchestration(REGIONS, 0)


def test_the_three_deployments_run_the_flows_on_the_registry_pool() -> None:
    from prefect.flows import load_flow_from_entrypoint

    assert set(DEPLOYMENTS) == {"ingest", "publish", "pipeline"}
    for name, deployment in DEPLOYMENTS.items():
        assert deployment["work_pool"]["name"] == WORK_POOL
        path, _ = deployment["entrypoint"].split(":")
        assert (PROJECT_ROOT / path).is_file()
        assert load_flow_from_entrypoint(str(PROJECT_ROOT / deployment["entrypoint"])).name == name
    [pull] = PREFECT_YAML["pull"]
    assert "prefect.deployments.steps.set_working_directory" in pull


def test_schedules_are_in_the_councils_time_zone() -> None:
    assert DEPLOYMENTS["ingest"]["schedules"] == [
        {"cron": "*/10 * * * *", "timezone": "Asia/Shanghai"}]
    assert DEPLOYMENTS["publish"]["schedules"] == [
        {"cron": "0 2 * * *", "timezone": "Asia/Shanghai"}]
    assert "schedules" not in DEPLOYMENTS["pipeline"]


def test_the_upload_trigger_matches_every_upload_event_and_debounces_bursts() -> None:
    [raw] = DEPLOYMENTS["ingest"]["triggers"]
    trigger = TypeAdapter(DeploymentEventTrigger).validate_python(raw)
    assert trigger.expect == {UPLOAD_EVENT}
    pattern = trigger.match.root["prefect.resource.id"]
    for region in REGIONS:
        for dataset in DATASETS:
            assert fnmatchcase(upload_resource_id(region, dataset), pattern)
    # Fires once per window, and the run waits out the window, so a burst makes one run that
    # sees every upload of the burst.
    assert trigger.posture == "Reactive" and trigger.threshold == 1
    assert trigger.within.total_seconds() > 0
    assert trigger.schedule_after == trigger.within
    assert trigger.parameters is None  # every region's pending uploads, not just the first's
    assert not any(DEPLOYMENTS[n].get("triggers") for n in ("publish", "pipeline"))
