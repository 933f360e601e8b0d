"""The deployments as operators run them: a real `prefect server start` (SQLite) on loopback, the
work pool and limits from `registry orchestration setup`, `prefect deploy --all` from
prefect.yaml, a process worker, and council files in a moto S3 landing area.

Every process started here runs in its own process group and is killed at the end, whatever
happens; its output goes to a log file that failure messages quote.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fixtures.council_files import COUNCIL_UPLOADS, FIXTURES
from moto_credentials import MOTO_KEY_ID, MOTO_SECRET

from registry.config.settings import PROJECT_ROOT, Settings
from registry.orchestration import PUBLISH_LIMIT, WORK_POOL, region_tag
from registry.snapshot.reader import open_snapshot, verify_snapshot
from registry.storage import S3Storage
from registry.storage.layout import report_key

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
UPLOADS = COUNCIL_UPLOADS
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    env: dict[str, str]
    api_url: str
    bucket: str
    root_uri: str
    settings: Settings
    logs: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def log_tails(self, lines: int = 60) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"----- {path.name} -----\n" + "\n".join(text))
        return "\n".join(out)

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """A command to completion; its output is kept in the logs folder too."""
        name = re.sub(r"[^a-z]+", "-", " ".join([Path(args[0]).name, *args[1:3]])).strip("-")
        done = subprocess.run(list(args), cwd=PROJECT_ROOT, env=self.env, capture_output=True,
                              text=True, timeout=timeout, start_new_session=True)
        (self.logs / f"{name}-{uuid.uuid4().hex[:6]}.log").write_text(done.stdout + done.stderr)
        assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(list(args), cwd=PROJECT_ROOT, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(proc)
        return proc

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, self.api_url + path, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json()

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(1)
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{self.log_tails()}")

    def flow_run(self, flow_run_id: str) -> dict:
        return self.api("GET", f"/flow_runs/{flow_run_id}")

    def wait_final(self, flow_run_id: str, timeout: float) -> dict:
        def final() -> dict | None:
            run = self.flow_run(flow_run_id)
            return run if run["state_type"] in FINAL else None

        return self.wait_for(f"flow run {flow_run_id} to finish", final, timeout)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, moto_endpoint: str) -> Iterator[Stack]:
    """Server, pool, limits, deployments and a worker, against a fresh moto bucket."""
    tmp = tmp_path_factory.mktemp("prefect-stack")
    bucket = f"reg-{uuid.uuid4().hex[:12]}"
    aws = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": MOTO_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": MOTO_SECRET, "AWS_REGION": "us-east-1"}
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                 aws_access_key_id=MOTO_KEY_ID, aws_secret_access_key=MOTO_SECRET,
                 ).create_bucket(Bucket=bucket)
    port = _free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "REGISTRY_", "PREFECT_"))}
    env.update(aws)
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
        "REGISTRY_STORAGE_URI": f"s3://{bucket}/root",
        "REGISTRY_PROJECT_DIR": str(PROJECT_ROOT),
        "PYTHONUNBUFFERED": "1",
    })
    logs = tmp / "logs"
    logs.mkdir()
    s = Stack(env=env, api_url=api_url, bucket=bucket, root_uri=f"s3://{bucket}/root",
              settings=Settings(_env_file=None, **aws), logs=logs)
    try:
        # No scheduler service: a cron run of ingest at a ten-minute mark would take uploads
        # from under the runs these tests start. The schedules are still checked as deployed.
        server = s.start("server", str(BIN / "prefect"), "server", "start", "--host",
                         "127.0.0.1", "--port", str(port), "--no-ui", "--analytics-off",
                         "--no-scheduler")

        def healthy() -> bool:
            assert server.poll() is None, f"prefect server exited\n{s.log_tails()}"
            try:
                return httpx.get(f"{api_url}/health", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        s.wait_for("the Prefect server to be healthy", healthy, 90)
        s.run(str(BIN / "registry"), "orchestration", "setup")
        s.run(str(BIN / "prefect"), "--no-prompt", "deploy", "--all", timeout=180)
        s.start("worker", str(BIN / "prefect"), "worker", "start", "--pool", WORK_POOL)
        yield s
    finally:
        s.stop()


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
    automations = stack.api("POST", "/automations/filter", json={})
    [trigger] = [a["trigger"] for a in automations if a["name"] == "registry-ingest-on-upload"]
    assert trigger["expect"] == ["registry.upload.created"]


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
    ingest = stack.api("GET", "/deployments/name/ingest/ingest")

    def triggered_runs() -> list[dict]:
        runs = stack.api("POST", "/flow_runs/filter", json={
            "flow_runs": {"deployment_id": {"any_": [ingest["id"]]}}})
        return [r for r in runs if not r["auto_scheduled"]]

    assert triggered_runs() == []
    # Three councils upload at once; fresh bytes, so the run has real work whatever ran before.
    burst = []
    for region, fixture in (("JS", "merchants_js_bom.csv"), ("SH", "merchants_sh_gb18030.csv"),
                            ("AH", "merchants_missing_column.csv")):
        upload = tmp_path / f"{region}-备案.csv"
        upload.write_bytes((FIXTURES / fixture).read_bytes() + b"\n")
        burst.append(stack.start(f"upload-{region}", str(BIN / "registry"), "upload",
                                 str(upload), "--region", region, "--dataset", "merchants"))
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
