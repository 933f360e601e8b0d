"""A running deployment as operators run it, shared by the tests that need one: a real `prefect
server start` (SQLite) on loopback, the work pool, limits, notification block and automations
from `registry orchestration setup`, `prefect deploy --all` from prefect.yaml, and a webhook
receiver on loopback (http.server) that records every notification the server posts.

The server is started once per test process (`prefect_server`). Each test module gets its own
moto bucket and a process worker whose flow runs use it (`Stack`), so that modules do not see
each other's uploads and snapshots; a module's worker is stopped, and its runs still waiting are
deleted, before the next module's starts.

The deployments' trigger windows are prefect.yaml's, shortened (`TEST_WINDOWS_S`) in a copy
deployed with `--prefect-file`: the shipped windows are made for councils' bursts, not for a
test's time budget.

The tests that use a stack run before every other test, in one block (`pytest_collection_
modifyitems`). Under `make test` (pytest-xdist, `--dist worksteal`) the process that draws the
first half of the tests runs them at once, before the other one has run out of work and steals
from the end of its queue: the server starts once per run, and the tests' waits on triggers and
workers overlap the other process's work.

Every process started here runs in its own process group and is killed at the end, whatever
happens; its output goes to a log file that failure messages quote.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml
from moto_credentials import MOTO_KEY_ID, MOTO_SECRET

from registry.cli.prefect_api import free_port
from registry.config.settings import PROJECT_ROOT, Settings
from registry.orchestration import WORK_POOL

BIN = Path(sys.executable).parent
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# Trigger windows (within = schedule_after) of the deployed copy of prefect.yaml, in seconds.
# The ingest window must hold a burst of three `registry upload` processes started together
# (their events came 1.5 s apart on a two-core machine at a load average of 14).
TEST_WINDOWS_S = {"ingest": 8, "publish": 5}
# How often wait_for asks again.
POLL_S = 0.5


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests that use a stack first, in their order (see the module docstring); after
    tests/conftest.py's order, which they keep otherwise."""
    items.sort(key=lambda item: "stack" not in getattr(item, "fixturenames", ()))


class Receiver:
    """An HTTP endpoint on loopback that records the JSON bodies posted to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {"unparsed": body.decode(errors="replace")}
                with lock:
                    received.append(doc)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self._lock = lock
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/notify"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class PrefectServer:
    env: dict[str, str]
    api_url: str
    logs: Path
    receiver: Receiver
    processes: list[subprocess.Popen] = field(default_factory=list)

    def log_tails(self, lines: int = 60) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"----- {path.name} -----\n" + "\n".join(text))
        return "\n".join(out)

    def run(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
        """A command to completion; its output is kept in the logs folder too."""
        name = re.sub(r"[^a-z]+", "-", " ".join([Path(args[0]).name, *args[1:3]])).strip("-")
        done = subprocess.run(list(args), cwd=PROJECT_ROOT, env=env or self.env,
                              capture_output=True, text=True, timeout=timeout,
                              start_new_session=True)
        (self.logs / f"{name}-{uuid.uuid4().hex[:6]}.log").write_text(done.stdout + done.stderr)
        assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
        return done

    def start(self, name: str, *args: str, env: dict[str, str] | None = None
              ) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(list(args), cwd=PROJECT_ROOT, env=env or self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(proc)
        return proc

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, self.api_url + path, timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(POLL_S)
        pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}\n{self.log_tails()}")

    def flow_run(self, flow_run_id: str) -> dict:
        return self.api("GET", f"/flow_runs/{flow_run_id}")

    def wait_final(self, flow_run_id: str, timeout: float) -> dict:
        def final() -> dict | None:
            run = self.flow_run(flow_run_id)
            return run if run["state_type"] in FINAL else None

        return self.wait_for(f"flow run {flow_run_id} to finish", final, timeout)

    def deployment_runs(self, name: str, *, triggered_only: bool = True) -> list[dict]:
        """The flow runs of deployment ``name`` (``ingest``, ``publish``), oldest first;
        without the schedule's runs unless ``triggered_only`` is off."""
        deployment = self.api("GET", f"/deployments/name/{name}/{name}")
        runs = self.api("POST", "/flow_runs/filter", json={
            "flow_runs": {"deployment_id": {"any_": [deployment["id"]]}},
            "sort": "EXPECTED_START_TIME_ASC"})
        return [r for r in runs if not (triggered_only and r["auto_scheduled"])]

    def stop(self, processes: list[subprocess.Popen] | None = None) -> None:
        procs = self.processes if processes is None else processes
        for proc in reversed(procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


@dataclass
class Stack(PrefectServer):
    """The server with one module's bucket and the worker that runs flows against it."""

    bucket: str = ""
    root_uri: str = ""
    settings: Settings | None = None


def _deployed_copy(tmp: Path) -> Path:
    """prefect.yaml with the trigger windows of TEST_WINDOWS_S, beside the logs."""
    config = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    for deployment in config["deployments"]:
        for trigger in deployment.get("triggers", []):
            trigger["within"] = trigger["schedule_after"] = TEST_WINDOWS_S[deployment["name"]]
    path = tmp / "prefect.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory,
                   prefect_database: Path) -> Iterator[PrefectServer]:
    """Server, pool, limits, notification block and automations, and the deployments."""
    tmp = tmp_path_factory.mktemp("prefect-server")
    (tmp / "prefect-home").mkdir()
    shutil.copyfile(prefect_database, tmp / "prefect-home" / "prefect.db")
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "REGISTRY_", "PREFECT_"))}
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "PREFECT_HOME": str(tmp / "prefect-home"),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": "127.0.0.1",
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        # A triggered run is taken as soon as it is scheduled, at the start of its window: its
        # process starts while the window runs, and the run waits for its scheduled time.
        "PREFECT_WORKER_PREFETCH_SECONDS": str(max(TEST_WINDOWS_S.values()) + 2),
        "REGISTRY_PROJECT_DIR": str(PROJECT_ROOT),
        "PYTHONUNBUFFERED": "1",
    })
    logs = tmp / "logs"
    logs.mkdir()
    s = PrefectServer(env=env, api_url=api_url, logs=logs, receiver=Receiver())
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
        s.run(str(BIN / "registry"), "orchestration", "setup",
              env={**env, "REGISTRY_NOTIFY_WEBHOOK_URL": s.receiver.url})
        s.run(str(BIN / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file",
              str(_deployed_copy(tmp)), timeout=180)
        yield s
    finally:
        s.stop()
        s.receiver.close()


@pytest.fixture(scope="module")
def stack(prefect_server: PrefectServer, moto_endpoint: str) -> Iterator[Stack]:
    """The shared server, a fresh moto bucket, and a worker running flows against it."""
    bucket = f"reg-{uuid.uuid4().hex[:12]}"
    aws = {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": MOTO_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": MOTO_SECRET, "AWS_REGION": "us-east-1"}
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1",
                 aws_access_key_id=MOTO_KEY_ID, aws_secret_access_key=MOTO_SECRET,
                 ).create_bucket(Bucket=bucket)
    env = {**prefect_server.env, **aws, "REGISTRY_STORAGE_URI": f"s3://{bucket}/root"}
    s = Stack(env=env, api_url=prefect_server.api_url, logs=prefect_server.logs,
              receiver=prefect_server.receiver, bucket=bucket, root_uri=f"s3://{bucket}/root",
              settings=Settings(_env_file=None, **aws))
    try:
        s.start(f"worker-{bucket}", str(BIN / "prefect"), "worker", "start", "--pool",
                WORK_POOL)
        yield s
    finally:
        s.stop()
        # Runs a trigger scheduled for this module's bucket must not run on the next one's.
        waiting = s.api("POST", "/flow_runs/filter", json={"flow_runs": {"state": {
            "type": {"any_": ["SCHEDULED", "PENDING", "RUNNING"]}}}})
        for run in waiting:
            s.api("DELETE", f"/flow_runs/{run['id']}")
