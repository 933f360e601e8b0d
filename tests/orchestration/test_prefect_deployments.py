"""The deployments as operators run them: a real `prefect server start` (SQLite) on loopback, the
work pool, limits and notification automations from `registry orchestration setup`, `prefect
deploy --all` from prefect.yaml, a process worker, and council files in a moto S3 landing area
(tests/prefect_stack.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest
from fixtures.council_files import COUNCIL_UPLOADS, FIXTURES
from moto_credentials import MOTO_KEY_ID, MOTO_SECRET
from prefect_stack import BIN, Stack

from registry.config.settings import PROJECT_ROOT
from registry.orchestration import (
    BATCH_HELD_EVENT,
    BATCHES_STAGED_EVENT,
    NOTIFY_BLOCK,
    PUBLISH_LIMIT,
    SNAPSHOT_PUBLISHED_EVENT,
    UPLOAD_REJECTED_EVENT,
    WORK_POOL,
    region_tag,
)
from registry.snapshot.reader import open_snapshot, verify_snapshot
from registry.storage import S3Storage
from registry.storage.layout import report_key

pytestmark = pytest.mark.slow

UPLOADS = COUNCIL_UPLOADS


def _upload_with_boto3(stack: Stack) -> list[str]:
    client = boto3.client("s3", endpoint_url=stack.env["AWS_ENDPOINT_URL"],
                          region_name="us-east-1", aws_access_key_id=MOTO_KEY_ID,
                          aws_secret_access_key=MOTO_SECRET)
    keys = []
    for name, region, dataset in UPLOADS:
        key = f"root/landing/{region}/{dataset}/2026-11/{name}"
        client.put_object(Bucket=stack.bucket, Key=key, Body=(FIXTURES / name).read_bytes())
        keys.append(key)
    return keys


def test_setup_and_deploy_made_the_pool_limits_and_deployments(stack: Stack) -> None:
    assert stack.api("GET", f"/work_pools/{WORK_POOL}")["type"] == "process"
    assert stack.api("GET", f"/v2/concurrency_limits/{PUBLISH_LIMIT}")["limit"] == 1
    assert stack.api("GET", f"/v2/concurrency_limits/tag:{region_tag('SH')}")["limit"] == 2

    ingest = stack.api("GET", "/deployments/name/ingest/ingest")
    assert ingest["work_pool_name"] == WORK_POOL
    [schedule] = ingest["schedules"]
    assert schedule["schedule"]["cron"] == "*/10 * * * *"
    assert schedule["schedule"]["timezone"] == "Asia/Shanghai"
    publish = stack.api("GET", "/deployments/name/publish/publish")
    assert publish["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
    assert publish["schedules"][0]["schedule"]["timezone"] == "Asia/Shanghai"
    pipeline = stack.api("GET", "/deployments/name/pipeline/pipeline")
    assert pipeline["schedules"] == []
    assert pipeline["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {
        "directory": str(PROJECT_ROOT)}}]
    automations = {a["name"]: a for a in stack.api("POST", "/automations/filter", json={})}
    assert automations["registry-ingest-on-upload"]["trigger"]["expect"] == [
        "registry.upload.created"]
    assert automations["registry-publish-on-staged"]["trigger"]["expect"] == [
        BATCHES_STAGED_EVENT]
    # The notification automations call the webhook block that setup saved.
    [block] = stack.api("POST", "/block_documents/filter", json={
        "block_documents": {"name": {"any_": [NOTIFY_BLOCK]}}})
    for name, event in (("registry-notify-batch-held", BATCH_HELD_EVENT),
                        ("registry-notify-upload-rejected", UPLOAD_REJECTED_EVENT),
                        ("registry-notify-snapshot-published", SNAPSHOT_PUBLISHED_EVENT)):
        assert automations[name]["trigger"]["expect"] == [event]
        [action] = automations[name]["actions"]
        assert (action["type"], action["block_document_id"]) == ("call-webhook", block["id"])


def test_pipeline_deployment_publishes_a_verified_snapshot(stack: Stack) -> None:
    _upload_with_boto3(stack)
    started = stack.run(str(BIN / "prefect"), "deployment", "run", "pipeline/pipeline",
                        "--param", "as_of=2025-03-01")
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", started.stdout)
    assert match, started.stdout
    run = stack.wait_final(match.group(1), timeout=150)
    assert run["state_type"] == "COMPLETED", f"{run['state']}\n{stack.log_tails()}"

    children = stack.api("POST", "/flow_runs/filter", json={
        "flow_runs": {"parent_flow_run_id": {"any_": [run["id"]]}}})
    assert [c["state_type"] for c in children] == ["COMPLETED", "COMPLETED"]
    assert len({c["flow_id"] for c in children}) == 2  # ingest and publish

    storage = S3Storage(stack.root_uri, stack.settings)
    assert verify_snapshot(storage, None) == []
    snapshot = open_snapshot(storage)
    assert str(snapshot.as_of) == "2025-03-01"
    assert len(snapshot.manifest.input_batches) == len(UPLOADS)
    assert snapshot.merchants.collect().height > 0

    artifacts = stack.api("POST", "/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
    [summary] = [a for a in artifacts if a["key"] == "registry-pipeline"]
    markdown = summary["data"]
    assert snapshot.snapshot_id in markdown and report_key(snapshot.snapshot_id) in markdown
    for region in ("SH", "JS", "ZJ", "AH"):
        assert f"| {region} |" in markdown
    # Ids and counts only: no council file name reaches the Prefect UI.
    assert not any(name in markdown for name, _, _ in UPLOADS)


def test_a_burst_of_registry_uploads_starts_one_ingest_run(stack: Stack, tmp_path: Path) -> None:
    # The server is shared with other modules: only runs started after this point count.
    before = {r["id"] for r in stack.deployment_runs("ingest")}

    def triggered_runs() -> list[dict]:
        return [r for r in stack.deployment_runs("ingest") if r["id"] not in before]

    # Three councils upload at once; fresh bytes, so the run has real work whatever ran before.
    burst = []
    for region, fixture in (("JS", "merchants_js_bom.csv"), ("SH", "merchants_sh_gb18030.csv"),
                            ("AH", "merchants_missing_column.csv")):
        upload = tmp_path / f"{region}-备案.csv"
        upload.write_bytes((FIXTURES / fixture).read_bytes() + b"\n")
        # Anhui's file lacks a column: `upload` refuses it unless forced, and it is forced
        # here so that the run has a file to reject as well.
        burst.append(stack.start(f"upload-{region}", str(BIN / "registry"), "upload",
                                 str(upload), "--region", region, "--dataset", "merchants",
                                 *(["--force"] if region == "AH" else [])))
    assert [proc.wait(timeout=60) for proc in burst] == [0, 0, 0], stack.log_tails()
    keys = [f"landing/{r}/merchants/{r}-备案.csv" for r in ("JS", "SH", "AH")]

    [run] = stack.wait_for("the upload events to start an ingest run", triggered_runs, 90)
    run = stack.wait_final(run["id"], timeout=90)
    assert run["state_type"] == "COMPLETED", f"{run['state']}\n{stack.log_tails()}"
    assert len(triggered_runs()) == 1  # the burst made one run

    # ... and that run saw every upload of the burst.
    [summary] = stack.api("POST", "/artifacts/filter", json={
        "artifacts": {"flow_run_id": {"any_": [run["id"]]}, "key": {"any_": ["registry-ingest"]}}})
    for region in ("JS", "SH", "AH"):
        assert f"| {region} |" in summary["data"], summary["data"]
    storage = S3Storage(stack.root_uri, stack.settings)
    receipts = {json.loads(storage.read_bytes(info.key))["source_key"]
                for info in storage.list("landing/") if "/_receipts/" in info.key
                and info.key.endswith(".json")}
    assert set(keys) <= receipts
