"""The orchestration contract without a server: the events and their payloads (ids and counts, no
personal data), what happens when they cannot be sent, the task-runner switch, and prefect.yaml
and automations.yaml against the names the code uses."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from datetime import UTC, date, datetime
from fnmatch import fnmatchcase

import pytest
import yaml
from fixtures.council_files import FIXTURES
from prefect.events import Event
from prefect.events.schemas.automations import AutomationCore
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
from prefect.server.utilities.user_templates import render_user_template_sync
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner
from pydantic import TypeAdapter
from typer.testing import CliRunner

from flows.ingest import ingest_task_runner
from registry.cli import app
from registry.config.regions import load_regions
from registry.config.settings import PROJECT_ROOT, Settings
from registry.ingest.pipeline import UploadResult
from registry.orchestration import (
    BATCH_HELD_EVENT,
    BATCHES_STAGED_EVENT,
    SNAPSHOT_PUBLISHED_EVENT,
    UPLOAD_EVENT,
    UPLOAD_REJECTED_EVENT,
    WORK_POOL,
    RegistryEvent,
    announce_ingest,
    batch_released_event,
    batches_resource_id,
    emit_events,
    emit_upload_created,
    ingest_events,
    notification_automations,
    set_up_orchestration,
    snapshot_published_event,
    snapshot_resource_id,
    upload_event_payload,
    upload_resource_id,
)
from registry.publish import PublishResult
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


def test_the_upload_event_says_whose_and_how_big_never_the_file_name() -> None:
    assert upload_event_payload("SH", "merchants", 120) == {
        "region": "SH", "dataset": "merchants", "size": 120}
    assert upload_resource_id("SH", "merchants") == "registry.landing.SH.merchants"


# A council's file name can carry a person's name; no event may.
PERSONAL = "张三"


def _outcome(region: str, status: str, n: int, **fields: object) -> UploadResult:
    defaults: dict[str, object] = {"upload_id": f"u{n}", "rows_in": 3, "accepted": 3}
    if status == "staged":
        defaults["batch_id"] = f"b{n}"
    return UploadResult(key=f"landing/{region}/merchants/{PERSONAL}-{n}.csv", region=region,
                        dataset="merchants", status=status, **{**defaults, **fields})


def test_an_ingest_run_announces_staged_held_and_rejected_with_ids_and_counts_only() -> None:
    outcomes = [
        _outcome("JS", "staged", 1, quarantined=1), _outcome("JS", "staged", 2),
        _outcome("SH", "staged", 3, held=True, accepted=2),
        _outcome("AH", "rejected", 4, accepted=0, file_error="NOT_A_SPREADSHEET"),
        _outcome("ZJ", "duplicate", 5),
    ]
    events = {(e.event, e.region): e for e in
              ingest_events(outcomes, {"b3": ["NULL_CEILING"]})}
    assert set(events) == {(BATCHES_STAGED_EVENT, "JS"), (BATCH_HELD_EVENT, "SH"),
                           (UPLOAD_REJECTED_EVENT, "AH")}
    staged = events[BATCHES_STAGED_EVENT, "JS"]
    assert staged.resource_id == batches_resource_id("JS", "merchants")
    assert staged.payload == {"region": "JS", "dataset": "merchants", "batches": 2,
                              "batch_ids": ["b1", "b2"], "accepted_rows": 6,
                              "quarantined_rows": 1}
    assert events[BATCH_HELD_EVENT, "SH"].payload["held"] == [
        {"batch_id": "b3", "accepted_rows": 2, "quarantined_rows": 0,
         "reasons": ["NULL_CEILING"]}]
    rejected = events[UPLOAD_REJECTED_EVENT, "AH"]
    assert rejected.resource_id == upload_resource_id("AH", "merchants")
    assert rejected.payload["rejected"] == [{"upload_id": "u4", "code": "NOT_A_SPREADSHEET"}]
    everything = json.dumps([e.payload for e in events.values()], ensure_ascii=False)
    assert PERSONAL not in everything and ".csv" not in everything


def test_a_run_that_publishes_itself_sends_no_staged_event() -> None:
    events = ingest_events([_outcome("JS", "staged", 1), _outcome("SH", "staged", 2, held=True)],
                           staged=False)
    assert [e.event for e in events] == [BATCH_HELD_EVENT]


def test_a_released_batch_announces_itself_as_staged_without_who_released_it() -> None:
    event = batch_released_event({
        "batch_id": "b9", "region": "SH", "dataset": "merchants", "released_by": PERSONAL,
        "released_at": "2026-12-01T09:00:00+00:00", "reason": f"{PERSONAL} checked the file"})
    assert (event.event, event.resource_id) == (BATCHES_STAGED_EVENT,
                                                batches_resource_id("SH", "merchants"))
    assert PERSONAL not in json.dumps(event.payload, ensure_ascii=False)
    assert event.payload["batch_ids"] == ["b9"] and event.payload["released"] is True


def test_a_publication_announces_its_snapshot_and_counts() -> None:
    result = PublishResult(
        snapshot_id="20261206T010203000000Z-abcd1234", manifest_key="m", seq=7,
        as_of=date(2026, 12, 6), previous_snapshot=None, rows={"merchants": 3},
        trusted_by_grade={"A": 2}, changes={"disqualified": 1})
    event = snapshot_published_event(result)
    assert (event.event, event.resource_id) == (SNAPSHOT_PUBLISHED_EVENT,
                                                snapshot_resource_id(result.snapshot_id))
    assert event.payload == {
        "snapshot_id": result.snapshot_id, "seq": 7, "as_of": "2026-12-06",
        "previous_snapshot": None, "rows": {"merchants": 3}, "trusted_by_grade": {"A": 2},
        "changes": {"disqualified": 1}}


def test_announcing_never_fails_the_flow(caplog, dead_api_url) -> None:
    caplog.set_level(logging.WARNING, logger="registry.orchestration")
    broken = [_outcome("JS", "staged", 1), object()]  # a bug in what the flow hands over
    with temporary_settings({PREFECT_API_URL: dead_api_url}):
        assert announce_ingest(broken) == []
        assert emit_events([RegistryEvent(BATCHES_STAGED_EVENT, "registry.batches.JS.x")]) is False
    assert "could not be built" in caplog.text
    assert f"{BATCHES_STAGED_EVENT} could not be sent to {dead_api_url}" in caplog.text


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
    assert f"{UPLOAD_EVENT} could not be sent to {dead_api_url}" in caplog.text
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
    assert "triggers" not in DEPLOYMENTS["pipeline"]


def test_staged_or_released_batches_trigger_one_publication_per_burst() -> None:
    [raw] = DEPLOYMENTS["publish"]["triggers"]
    trigger = TypeAdapter(DeploymentEventTrigger).validate_python(raw)
    assert trigger.expect == {BATCHES_STAGED_EVENT}
    pattern = trigger.match.root["prefect.resource.id"]
    for region in REGIONS:
        for dataset in DATASETS:
            assert fnmatchcase(batches_resource_id(region, dataset), pattern)
    assert trigger.posture == "Reactive" and trigger.threshold == 1
    assert trigger.schedule_after == trigger.within
    # Well inside the five minutes a revocation may take to be published, with the ingest
    # trigger's window before it.
    [ingest] = DEPLOYMENTS["ingest"]["triggers"]
    assert ingest["schedule_after"] + trigger.schedule_after.total_seconds() <= 120
    assert trigger.parameters is None  # as_of: today


def test_the_shipped_automations_notify_each_event_with_a_json_body() -> None:
    block = str(uuid.uuid4())
    automations = [AutomationCore.model_validate(a) for a in notification_automations(block)]
    resources = {BATCH_HELD_EVENT: batches_resource_id("SH", "merchants"),
                 UPLOAD_REJECTED_EVENT: upload_resource_id("AH", "merchants"),
                 SNAPSHOT_PUBLISHED_EVENT: snapshot_resource_id("20261206T010203000000Z-ab")}
    assert {e for a in automations for e in a.trigger.expect} == set(resources)
    for automation in automations:
        [event_name] = automation.trigger.expect
        assert fnmatchcase(resources[event_name],
                           automation.trigger.match.root["prefect.resource.id"])
        [action] = automation.actions
        assert (action.type, str(action.block_document_id)) == ("call-webhook", block)
        event = Event(event=event_name, resource={"prefect.resource.id": resources[event_name]},
                      payload={"region": "SH", "counts": {"a<b": 1}},
                      occurred=datetime(2026, 12, 6, tzinfo=UTC))
        body = json.loads(render_user_template_sync(action.payload, {"event": event}))
        assert body["event"] == event_name and body["resource"] == resources[event_name]
        assert body["payload"] == {"region": "SH", "counts": {"a<b": 1}}
