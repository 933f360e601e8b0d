"""A real S3 server for the tests: a throwaway Ceph RADOS Gateway on loopback, per session.

moto checks conditional writes without a lock and barely enforces bucket policies, so the
guarantees the registry relies on are also proven against Ceph RGW, started from
``infra/ceph-rgw/start-rgw.sh`` with one S3 user per role:

- ``pipeline``: owns the test buckets (the registry's own role);
- ``reader``: a downstream app;
- ``council-<region>``: one per region of ``config/regions.yaml`` (``council-sh``, ...).

Fixtures:

- ``rgw`` (session): the running :class:`RgwCluster` (``endpoint``, ``users``,
  ``settings(user)``, ``client(user)``, ``council(region)``, ``startup_s``);
- ``rgw_bucket`` / ``rgw_versioned_bucket``: a fresh bucket owned by ``pipeline``, emptied
  and removed after the test;
- ``rgw_storage``: :class:`S3Storage` as ``pipeline`` under ``s3://<rgw_bucket>/root``.

Without the Debian packages the RGW tests are skipped with the install command, except under
``CI=true``, where a missing package fails them: CI must always prove these properties.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import boto3
import pytest
from botocore.config import Config

from registry.config.regions import load_regions
from registry.config.settings import PROJECT_ROOT, Settings
from registry.storage import S3Storage

SCRIPTS = PROJECT_ROOT / "infra" / "ceph-rgw"
APT_PACKAGES = "ceph-mon ceph-osd radosgw ceph-common curl"
REQUIRED_COMMANDS = (
    "ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "ceph-authtool", "monmaptool",
    "curl",
)
# One block of consecutive ports per cluster: monitor, gateway, then the OSD's range (it binds
# four). The blocks lie below Linux's ephemeral range (32768+) so that no outgoing connection
# takes one, and a lock file per block keeps two concurrent test sessions apart.
PORT_BLOCK = 16
PORT_BLOCKS_FROM, PORT_BLOCKS_TO = 20_000, 32_000
PORT_LOCK_DIR = Path(tempfile.gettempdir()) / "yrd-rgw-ports"
START_TIMEOUT_S = 120


@dataclass(frozen=True)
class RgwUser:
    name: str
    access_key: str
    secret_key: str


@dataclass(frozen=True)
class RgwCluster:
    endpoint: str
    users: dict[str, RgwUser]
    startup_s: float

    def settings(self, user: str = "pipeline", **overrides: Any) -> Settings:
        """Registry settings that reach this gateway as ``user``."""
        creds = self.users[user]
        values: dict[str, Any] = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": creds.access_key,
            "AWS_SECRET_ACCESS_KEY": creds.secret_key,
            "AWS_REGION": "us-east-1",
            "s3_max_attempts": 4,
        }
        return Settings(_env_file=None, **(values | overrides))

    def client(self, user: str = "pipeline") -> Any:
        """A plain boto3 S3 client as ``user`` (for what the storage seam does not expose)."""
        creds = self.users[user]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=creds.access_key,
            aws_secret_access_key=creds.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"total_max_attempts": 1},
            ),
        )

    @staticmethod
    def council(region: str) -> str:
        return f"council-{region.lower()}"


def _missing_commands() -> list[str]:
    return [cmd for cmd in REQUIRED_COMMANDS if shutil.which(cmd) is None]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _reserve_port_block() -> tuple[int, IO[str]]:
    """A block of ``PORT_BLOCK`` free loopback ports, locked against other test sessions."""
    PORT_LOCK_DIR.mkdir(exist_ok=True)
    bases = list(range(PORT_BLOCKS_FROM, PORT_BLOCKS_TO, PORT_BLOCK))
    random.shuffle(bases)
    for base in bases:
        lock = open(PORT_LOCK_DIR / f"{base}.lock", "w")  # noqa: SIM115 - held for the session
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        if all(_port_free(port) for port in range(base, base + PORT_BLOCK)):
            return base, lock
        lock.close()
    raise RuntimeError("no free block of loopback ports for Ceph RGW")


def _logs_tail(base: Path, lines: int = 15) -> str:
    out = []
    for log in sorted((base / "run" / "log").glob("*")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {log.name}\n" + "\n".join(text))
    return "\n".join(out)


@pytest.fixture(scope="session")
def rgw() -> Iterator[RgwCluster]:
    """A Ceph RGW on free loopback ports with the registry's users, for the whole session."""
    missing = _missing_commands()
    if missing:
        why = (
            f"Ceph RGW tests need the Debian packages {APT_PACKAGES} (missing commands: "
            f"{', '.join(missing)}). Install them with: apt-get install -y "
            f"--no-install-recommends {APT_PACKAGES}"
        )
        if _in_ci():
            pytest.fail(f"CI=true and {why}", pytrace=False)
        pytest.skip(why)

    port, lock = _reserve_port_block()
    base = Path(tempfile.mkdtemp(prefix="yrd-rgw-"))
    regions = " ".join(load_regions(PROJECT_ROOT / "config").regions)
    env = os.environ | {
        "CEPH_BASE": str(base),
        "MON_PORT": str(port),
        "RGW_PORT": str(port + 1),
        "OSD_PORT_MIN": str(port + 2),
        "OSD_PORT_MAX": str(port + PORT_BLOCK - 1),
        "MEMSTORE_BYTES": str(1024**3),
        "REGIONS": regions,
        "WATCH_PID": str(os.getpid()),
    }
    started = time.monotonic()
    try:
        proc = subprocess.run(
            [str(SCRIPTS / "start-rgw.sh")], env=env, capture_output=True, text=True,
            timeout=START_TIMEOUT_S, check=False,
        )
        if proc.returncode != 0:
            pytest.fail(
                f"Ceph RGW did not start (rc={proc.returncode}):\n{proc.stderr}\n"
                f"{_logs_tail(base)}",
                pytrace=False,
            )
        startup_s = time.monotonic() - started
        creds = json.loads((base / "credentials.json").read_text())
        users = {
            name: RgwUser(name, keys["access_key"], keys["secret_key"])
            for name, keys in creds["users"].items()
        }
        yield RgwCluster(endpoint=creds["endpoint"], users=users, startup_s=startup_s)
    finally:
        subprocess.run(
            [str(SCRIPTS / "stop-rgw.sh")], env=env, capture_output=True, timeout=60,
            check=False,
        )
        shutil.rmtree(base, ignore_errors=True)
        lock.close()


def empty_and_delete_bucket(client: Any, bucket: str) -> None:
    """Remove every object version and delete marker, then the bucket (keeps memstore small)."""
    with contextlib.suppress(client.exceptions.NoSuchBucket):
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
            doomed = [
                {"Key": v["Key"], "VersionId": v["VersionId"]}
                for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
            ]
            for i in range(0, len(doomed), 1000):
                client.delete_objects(
                    Bucket=bucket, Delete={"Objects": doomed[i : i + 1000], "Quiet": True}
                )
        client.delete_bucket(Bucket=bucket)


def _bucket(rgw: RgwCluster, *, versioned: bool) -> Iterator[str]:
    client = rgw.client("pipeline")
    name = f"reg-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(
            Bucket=name, VersioningConfiguration={"Status": "Enabled"}
        )
    try:
        yield name
    finally:
        empty_and_delete_bucket(client, name)


@pytest.fixture
def rgw_bucket(rgw: RgwCluster) -> Iterator[str]:
    """A fresh, unversioned bucket owned by the pipeline user."""
    yield from _bucket(rgw, versioned=False)


@pytest.fixture
def rgw_versioned_bucket(rgw: RgwCluster) -> Iterator[str]:
    """A fresh bucket with versioning enabled, where RGW ignores If-None-Match."""
    yield from _bucket(rgw, versioned=True)


@pytest.fixture
def rgw_storage(rgw: RgwCluster, rgw_bucket: str) -> S3Storage:
    """The storage seam on Ceph RGW, as the pipeline user."""
    return S3Storage(f"s3://{rgw_bucket}/root", rgw.settings("pipeline"))
