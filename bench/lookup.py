"""Point lookups on a 10,000,000-merchant snapshot on S3 over loopback.

    make bench-lookup          (.venv/bin/python -m bench.lookup [--rows N] [--lookups K]
                                [--server rgw|moto] [--seed S] [--out FILE])

The snapshot: a synthetic merchants table of the published schema (:mod:`bench.lookup_data`,
cached under bench/data/), serialised by the publisher's own ``parquet_bytes`` (its row-group
size and statistics, its field metadata), written create-if-absent under
``registry/snapshots/{id}/`` with a manifest that verifies, committed by a log entry and moved
to by ``latest.json`` through the publication protocol's ``move_latest``. Only the build and
the registry gate of a real publication are left out. It is then opened with
``registry.open_snapshot``, which verifies every checksum.

The store is a throwaway Ceph RGW on loopback (``infra/ceph-rgw``, the recipe of
tests/rgw_fixtures.py) when its Debian packages are installed, else moto's server as in the
tests (``--server`` chooses). Moto keeps each object in memory and copies the whole of it for
every ranged read, so its latencies grow with the file, not with what is read: use it only
when RGW is missing.

Measured, interleaved in a random order per code, for ``--lookups`` random USCCs that are in the
table:

- ``reader``: ``snap.merchant(uscc)`` (polars, pruned to the row group that holds the code);
- ``duckdb``: ``SELECT * FROM read_parquet(uri) WHERE uscc = ?`` through the httpfs extension
  (the ``duckdb-extension-httpfs`` wheel, loaded from its file: nothing is downloaded), one
  connection for all lookups, default settings;
- baselines, the same answers without pruning: polars with ``use_statistics=False`` and DuckDB
  filtering on ``uscc || ''``, which statistics cannot answer. Each reads the whole USCC
  column; results are given as ratios against them.

Writes bench/results/lookup-{timestamp}.json (or ``--out``) and prints a table, with the load
average before and after: timings on a shared machine are noisy, compare ratios from one run.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import duckdb
import polars as pl
from botocore.config import Config

from bench.lookup_data import AS_OF, merchants_table
from registry import __version__
from registry.config.published import load_published_contracts
from registry.config.settings import PROJECT_ROOT, Settings
from registry.publish.protocol import move_latest
from registry.publish.tables import ROW_GROUP_ROWS, parquet_bytes
from registry.snapshot.formats import FileEntry, LogEntry, Manifest, ScoreModelRef, sha256_hex
from registry.snapshot.reader import Snapshot, open_snapshot
from registry.storage import S3Storage
from registry.storage.layout import log_key, manifest_key, snapshot_prefix

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DEFAULT_SEED = 20241130
TARGET_P50_MS = 100.0
BASELINE_RUNS = 5
# The recipe of tests/rgw_fixtures.py: start-rgw.sh on a block of free loopback ports below the
# ephemeral range, locked against test sessions (which use the same lock folder).
RGW_SCRIPTS = PROJECT_ROOT / "infra" / "ceph-rgw"
PORT_BLOCK, PORT_BLOCKS_FROM, PORT_BLOCKS_TO = 16, 20_000, 32_000
PORT_LOCK_DIR = Path(tempfile.gettempdir()) / "yrd-rgw-ports"
MOTO_KEY_ID, MOTO_SECRET = "bench-key-id", "bench-secret-key"


# -- the S3 server -------------------------------------------------------------------------------


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def rgw_server(object_bytes: int) -> Iterator[dict[str, str]]:
    """A Ceph RGW on loopback whose in-memory store holds ``object_bytes`` with room to
    spare; yields endpoint and the pipeline user's keys."""
    PORT_LOCK_DIR.mkdir(exist_ok=True)
    bases = list(range(PORT_BLOCKS_FROM, PORT_BLOCKS_TO, PORT_BLOCK))
    random.shuffle(bases)
    for port in bases:
        lock = open(PORT_LOCK_DIR / f"{port}.lock", "w")  # noqa: SIM115 - held while running
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        if all(_port_free(p) for p in range(port, port + PORT_BLOCK)):
            break
        lock.close()
    else:
        raise RuntimeError("no free block of loopback ports for Ceph RGW")
    base = Path(tempfile.mkdtemp(prefix="bench-rgw-"))
    env = os.environ | {
        "CEPH_BASE": str(base), "MON_PORT": str(port), "RGW_PORT": str(port + 1),
        "OSD_PORT_MIN": str(port + 2), "OSD_PORT_MAX": str(port + PORT_BLOCK - 1),
        "MEMSTORE_BYTES": str(2 * object_bytes + 1024**3), "WATCH_PID": str(os.getpid()),
    }
    try:
        subprocess.run([str(RGW_SCRIPTS / "start-rgw.sh")], env=env, check=True,
                       capture_output=True, text=True, timeout=180)
        creds = json.loads((base / "credentials.json").read_text())
        user = creds["users"]["pipeline"]
        yield {"endpoint": creds["endpoint"], "key": user["access_key"],
               "secret": user["secret_key"]}
    finally:
        subprocess.run([str(RGW_SCRIPTS / "stop-rgw.sh")], env=env, capture_output=True,
                       timeout=60, check=False)
        shutil.rmtree(base, ignore_errors=True)
        lock.close()


@contextlib.contextmanager
def moto_server() -> Iterator[dict[str, str]]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {"endpoint": f"http://127.0.0.1:{port}", "key": MOTO_KEY_ID,
               "secret": MOTO_SECRET}
    finally:
        server.stop()


def s3_storage(server: dict[str, str]) -> S3Storage:
    """A fresh bucket on ``server`` and the storage seam under it."""
    bucket = f"bench-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3", endpoint_url=server["endpoint"], region_name="us-east-1",
        aws_access_key_id=server["key"], aws_secret_access_key=server["secret"],
        config=Config(s3={"addressing_style": "path"}),
    ).create_bucket(Bucket=bucket)
    settings = Settings(_env_file=None, AWS_ENDPOINT_URL=server["endpoint"],
                        AWS_ACCESS_KEY_ID=server["key"], AWS_SECRET_ACCESS_KEY=server["secret"],
                        AWS_REGION="us-east-1")
    return S3Storage(f"s3://{bucket}/registry-bench", settings)


# -- the snapshot --------------------------------------------------------------------------------


def commit_snapshot(storage: S3Storage, data: bytes, rows: int) -> str:
    """Write ``data`` as the merchants file of a new snapshot, with a manifest that verifies, a
    log entry and the latest pointer, as the publication protocol does (§11.1, steps 4-7)."""
    now = datetime.now(UTC)
    snapshot_id = f"{now:%Y%m%dT%H%M%S%f}Z-{sha256_hex(data)[:8]}"
    storage.put_if_absent(f"{snapshot_prefix(snapshot_id)}merchants.parquet", data)
    contracts = load_published_contracts()
    manifest = Manifest(
        snapshot_id=snapshot_id, as_of=AS_OF, published_at=now, previous_snapshot=None,
        code_version=__version__, contract_versions={},
        output_contract_versions={"merchants": contracts["merchants"].major},
        score_model=ScoreModelRef(version=0, sha256="0" * 64), suite_versions={},
        input_batches=[],
        files=[FileEntry(path="merchants.parquet", sha256=sha256_hex(data), bytes=len(data),
                         rows=rows)],
        summary={"rows": {"merchants": rows}},
    )
    manifest_bytes = manifest.to_json_bytes()
    storage.put_if_absent(manifest_key(snapshot_id), manifest_bytes)
    entry = LogEntry(seq=1, action="publish", snapshot_id=snapshot_id,
                     manifest=manifest_key(snapshot_id),
                     manifest_sha256=sha256_hex(manifest_bytes), as_of=AS_OF,
                     previous_snapshot=None, committed_at=datetime.now(UTC))
    storage.put_if_absent(log_key(1), entry.to_json_bytes())
    move_latest(storage, entry)
    return snapshot_id


def duckdb_connection(server: dict[str, str]) -> duckdb.DuckDBPyConnection:
    """DuckDB with the httpfs extension from its PyPI wheel, and the server's credentials."""
    import duckdb_extension_httpfs

    extension = (Path(duckdb_extension_httpfs.__file__).parent / "extensions"
                 / f"v{duckdb.__version__}" / "httpfs.duckdb_extension")
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    con.execute(f"LOAD '{extension}'")
    host = server["endpoint"].removeprefix("http://")
    con.execute(f"CREATE SECRET bench (TYPE s3, KEY_ID '{server['key']}', SECRET "
                f"'{server['secret']}', ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false, "
                "REGION 'us-east-1')")
    return con


# -- measuring -----------------------------------------------------------------------------------


def _ms(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return (time.perf_counter() - started) * 1000, result


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered), 1), "p95_ms": round(p95, 1),
            "min_ms": round(ordered[0], 1), "max_ms": round(ordered[-1], 1), "n": len(ordered)}


def measure(snap: Snapshot, con: duckdb.DuckDBPyConnection, codes: list[str],
            expected: dict[str, dict]) -> dict[str, dict[str, float]]:
    uri = snap.uri("merchants")
    key = snap.key("merchants")

    def reader(code: str) -> dict | None:
        return snap.merchant(code)

    def in_duckdb(code: str) -> list:
        return con.execute(f"SELECT * FROM read_parquet('{uri}') WHERE uscc = ?",
                           [code]).fetchall()

    def polars_scan(code: str) -> pl.DataFrame:
        unpruned = snap.storage.scan_parquet(key, use_statistics=False)
        return snap.storage.retried_read(key, unpruned.filter(pl.col("uscc") == code).collect)

    def duckdb_scan(code: str) -> list:
        return con.execute(f"SELECT * FROM read_parquet('{uri}') WHERE uscc || '' = ?",
                           [code]).fetchall()

    ways = {"reader": reader, "duckdb": in_duckdb}
    baselines = {"polars_full_scan": polars_scan, "duckdb_full_scan": duckdb_scan}
    for fn in (*ways.values(), *baselines.values()):  # warm up: connections, extension
        fn(codes[0])
    times: dict[str, list[float]] = {name: [] for name in (*ways, *baselines)}
    order = random.Random(7)
    for i, code in enumerate(codes):
        todo = list(ways.items()) + (list(baselines.items()) if i < BASELINE_RUNS else [])
        order.shuffle(todo)
        for name, fn in todo:
            elapsed, answer = _ms(lambda fn=fn, code=code: fn(code))
            rows = answer.height if isinstance(answer, pl.DataFrame) else (
                len(answer) if isinstance(answer, list) else int(answer is not None))
            if rows != 1:
                raise AssertionError(f"{name} found {rows} rows for {code}")
            if name == "reader" and answer != expected[code]:
                raise AssertionError(f"reader's row for {code} differs from the table's")
            times[name].append(elapsed)
    return {name: _quantiles(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--lookups", type=int, default=60)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--server", choices=("rgw", "moto"),
                        default="rgw" if shutil.which("radosgw") else "moto")
    parser.add_argument("--out", type=Path, help="results file (default: in bench/results/)")
    args = parser.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]

    started = time.perf_counter()
    frame = merchants_table(args.rows, args.seed)
    load_s = time.perf_counter() - started
    contract = load_published_contracts()["merchants"]
    started = time.perf_counter()
    data = parquet_bytes(frame, contract)
    serialise_ms = (time.perf_counter() - started) * 1000
    footer_bytes = int.from_bytes(data[-8:-4], "little")
    row_groups = -(-args.rows // ROW_GROUP_ROWS)
    picker = random.Random(args.seed)
    codes = [frame.get_column("uscc")[picker.randrange(args.rows)] for _ in range(args.lookups)]
    expected = {r["uscc"]: r for r in frame.filter(pl.col("uscc").is_in(codes)).to_dicts()}
    del frame

    server = rgw_server(len(data)) if args.server == "rgw" else moto_server()
    with server as endpoint:
        storage = s3_storage(endpoint)
        upload_ms, snapshot_id = _ms(lambda: commit_snapshot(storage, data, args.rows))
        open_ms, snap = _ms(lambda: open_snapshot(storage))  # verifies every checksum
        assert snap.snapshot_id == snapshot_id
        con = duckdb_connection(endpoint)
        results = measure(snap, con, codes, expected)
        con.close()

    load_after = [round(x, 2) for x in os.getloadavg()]
    ratios = {
        way: {base: round(results[base]["p50_ms"] / results[way]["p50_ms"], 1)
              for base in ("polars_full_scan", "duckdb_full_scan")}
        for way in ("reader", "duckdb")
    }
    out = args.out or RESULTS / f"lookup-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "bench": "lookup", "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": args.rows, "lookups": args.lookups, "seed": args.seed, "server": args.server,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "load_average_before": load_before, "load_average_after": load_after},
        "versions": {"polars": pl.__version__, "duckdb": duckdb.__version__},
        "file": {"bytes": len(data), "row_group_rows": ROW_GROUP_ROWS, "row_groups": row_groups,
                 "footer_bytes": footer_bytes},
        "setup_s": {"table_load": round(load_s, 1), "parquet_bytes": round(serialise_ms / 1e3, 1),
                    "commit_upload": round(upload_ms / 1e3, 1),
                    "open_and_verify": round(open_ms / 1e3, 1)},
        "lookups_ms": results,
        "speedup_vs_full_scan_p50": ratios,
        "target_p50_ms": TARGET_P50_MS,
        "meets_target": {way: results[way]["p50_ms"] <= TARGET_P50_MS
                         for way in ("reader", "duckdb")},
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{args.rows:,} merchants, {len(data) / 1e6:.0f} MB in {row_groups} row groups of "
          f"{ROW_GROUP_ROWS} rows (footer {footer_bytes / 1e3:.0f} kB), on {args.server} "
          f"over loopback; {args.lookups} lookups of present USCCs")
    print(f"setup: parquet_bytes {serialise_ms / 1e3:.1f} s, commit {upload_ms / 1e3:.1f} s, "
          f"open+verify {open_ms / 1e3:.1f} s")
    for name, q in results.items():
        print(f"  {name:18s} p50 {q['p50_ms']:8.1f} ms  p95 {q['p95_ms']:8.1f} ms  (n={q['n']})")
    for way, r in ratios.items():
        print(f"  {way}: x{r['polars_full_scan']} faster than polars' full scan, "
              f"x{r['duckdb_full_scan']} than DuckDB's; p50 target {TARGET_P50_MS:.0f} ms: "
              + ("met" if doc["meets_target"][way] else "MISSED"))
    print(f"load average before {load_before}, after {load_after} on {os.cpu_count()} cores")
    print(f"(results: {out})")


if __name__ == "__main__":
    main()
