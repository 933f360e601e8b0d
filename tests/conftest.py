"""Shared fixtures: a real moto S3 server over HTTP on loopback, and storage on both backends."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto_credentials import MOTO_KEY_ID, MOTO_SECRET

from registry.config.settings import Settings
from registry.storage import LocalStorage, S3Storage, Storage


def _backend(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("storage") if callspec is not None else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Two things about the order and the set of tests.

    A module marked ``backends(...)`` runs its ``storage`` tests on those backends only: the
    pipeline's behaviour on local disk and moto S3, while Ceph RGW's S3 semantics are held by
    the storage contract, race and publication tests, which run on all three.

    Modules with slow end-to-end tests run first, in their usual order, the rest after. With
    ``--dist worksteal`` (``make test``) the two processes then end together: the one that
    drew the short tests takes over the other's queue, instead of one process starting a
    two-minute demo while the other has nothing left to do."""
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("backends")
        backend = _backend(item)
        (dropped if marker and backend and backend not in marker.args else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop the temporary Prefect server an in-process flow run started (Prefect's ephemeral
    API) while pytest's output is still open: left to Prefect's exit hook, its "Stopping
    temporary server" line goes to a stream pytest has closed, and logging prints a traceback
    under the summary."""
    server = sys.modules.get("prefect.server.api.server")
    if server is not None:
        for instance in list(server.SubprocessASGIServer._instances.values()):
            instance.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_settings(moto_endpoint: str) -> Settings:
    return Settings(
        _env_file=None,
        AWS_ENDPOINT_URL=moto_endpoint,
        AWS_ACCESS_KEY_ID=MOTO_KEY_ID,
        AWS_SECRET_ACCESS_KEY=MOTO_SECRET,
        AWS_REGION="us-east-1",
        s3_max_attempts=4,
    )


@pytest.fixture
def s3_bucket(s3_settings: Settings) -> str:
    """A fresh, empty bucket for one test."""
    name = f"reg-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3",
        endpoint_url=s3_settings.aws_endpoint_url,
        region_name=s3_settings.aws_region,
        aws_access_key_id=MOTO_KEY_ID,
        aws_secret_access_key=MOTO_SECRET,
    ).create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3", pytest.param("rgw", marks=pytest.mark.rgw)])
def storage(request: pytest.FixtureRequest, tmp_path) -> Storage:
    """The same storage contract on local disk, on S3 over HTTP (moto) and on Ceph RGW."""
    if request.param == "local":
        return LocalStorage(tmp_path / "root")
    if request.param == "rgw":
        return request.getfixturevalue("rgw_storage")
    settings = request.getfixturevalue("s3_settings")
    bucket = request.getfixturevalue("s3_bucket")
    return S3Storage(f"s3://{bucket}/root", settings)


@pytest.fixture(autouse=True)
def _no_ambient_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up credentials or endpoints from the developer's shell."""
    for var in list(os.environ):
        if var.startswith(("AWS_", "REGISTRY_")):
            monkeypatch.delenv(var, raising=False)


@pytest.fixture(autouse=True)
def _no_prefect_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Prefect API a test starts, in process or in a child (the demo), stays on
    loopback: no telemetry heartbeat to Prefect's servers, and no telemetry row written
    to the ephemeral SQLite database while it starts (a "database is locked" there once
    failed the demo's server start)."""
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def _migrated_prefect_database(shared: Path) -> Path:
    """``shared``/prefect-database/prefect.db, migrated to the installed Prefect's schema by
    the first process to ask (under a lock; the others wait for it)."""
    database = shared / "prefect-database" / "prefect.db"
    with (shared / "prefect-database.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not database.exists():
            home = database.parent.with_name("prefect-database-making")
            shutil.rmtree(home, ignore_errors=True)
            subprocess.run(
                [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                env={**os.environ, "PREFECT_HOME": str(home),
                     "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
                check=True, capture_output=True, timeout=300)
            home.rename(database.parent)
    return database


@pytest.hookimpl(trylast=True)  # after pytest's own, which makes the temporary directories
def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, the controlling process migrates the Prefect database
    (:func:`prefect_database`) in a thread while the test processes start and collect: each
    needs it before its first test, and otherwise one migrated it (11 s) while the other
    waited."""
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None):
        return
    import threading

    shared = config._tmp_path_factory.getbasetemp()  # the run's base, above each worker's own
    threading.Thread(target=_migrated_prefect_database, args=(shared,), daemon=True,
                     name="prefect-database").start()


@pytest.fixture(scope="session")
def prefect_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Prefect database migrated to the installed Prefect's schema, made once per test run
    (under pytest-xdist by the controlling process as the test processes start; else by the
    first test process to ask, the other waiting) for every Prefect home a test starts: a
    server on a new home spends 8 of its 14 s creating the database, which the command under
    test does only once on a real machine."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's base, above each worker's own
    return _migrated_prefect_database(shared)


def prefect_home_from(database: Path, home: Path) -> Path:
    """``home`` holding a copy of the migrated ``database`` (:func:`prefect_database`)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(database, home / "prefect.db")
    return home


@pytest.fixture(scope="session", autouse=True)
def _prefect_home_of_this_process(tmp_path_factory: pytest.TempPathFactory,
                                  prefect_database: Path) -> Iterator[None]:
    """The Prefect home of every test that does not ask for one of its own
    (:func:`prefect_home`): one per test process, from the migrated database, so that a
    command's temporary server or a flow's ephemeral API never opens the developer's
    ~/.prefect, nor one SQLite database shared by both test processes."""
    home = prefect_home_from(prefect_database, tmp_path_factory.mktemp("prefect-home"))
    previous = os.environ.get("PREFECT_HOME")
    os.environ["PREFECT_HOME"] = str(home)
    yield
    if previous is None:
        os.environ.pop("PREFECT_HOME", None)
    else:
        os.environ["PREFECT_HOME"] = previous


@pytest.fixture
def prefect_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                 prefect_database: Path) -> Iterator[Path]:
    """An ephemeral Prefect API with its own database, nothing shared with the developer's
    (for tests that run a flow or a CLI command in process), from a migrated copy."""
    monkeypatch.setenv("PREFECT_HOME", str(prefect_home_from(prefect_database,
                                                             tmp_path / "prefect")))
    monkeypatch.setenv("PREFECT_API_URL", "")
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    # Prefect reads its settings when imported: the start limit of its temporary server (20 s
    # by default, too short on a loaded two-core machine) is raised here, as registry/cli does.
    from prefect.settings import (
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    with temporary_settings({PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 180}):
        yield tmp_path


# Ceph RGW, a production S3 server on loopback: tests/rgw_fixtures.py.
# Totals of the reliability tests' record_property values: tests/reliability_tally.py.
# A running Prefect deployment (server, worker, webhook receiver): tests/prefect_stack.py.
pytest_plugins = ["rgw_fixtures", "reliability_tally", "prefect_stack"]
