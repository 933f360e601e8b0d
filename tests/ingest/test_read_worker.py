"""Every upload is read in a worker process held to the configured time and memory limits
(registry/read_worker.py): past either, the file is refused whole, with a receipt. What the
worker reads comes back to the ingest process exactly as reading in process makes it."""

from __future__ import annotations

import dataclasses
import gc
import json
import threading

import polars as pl
import psutil
import pytest
from fixtures.bad import make_bad
from fixtures.council_files import COUNCIL_UPLOADS, FIXTURES

from registry.config.contracts import load_contracts
from registry.config.settings import Settings
from registry.ingest import read_worker
from registry.ingest import rejections as rj
from registry.ingest.pipeline import ingest_object, ingest_pending, read_limits
from registry.ingest.readers import upload_table
from registry.storage import LocalStorage

SETTINGS = Settings(_env_file=None)
CONTRACTS = load_contracts(SETTINGS.schemas_dir)
LIMITS = read_limits(SETTINGS)
IN_PROCESS = dataclasses.replace(LIMITS, max_read_seconds=None, max_read_memory_bytes=None)
MERCHANT_HEADERS = set(CONTRACTS["merchants"].header_index())
# A plain merchants CSV of two million short rows (76 MB): its read needs over 400 MB of the
# worker's data segment, of which the runtime and libraries take about 200 MB. So it fails
# under TIGHT_MEMORY with room to spare for changes in what the reader allocates.
HUNGRY = ("备案编号,统一社会信用代码,经营者名称,所在城市\n"
          + "JS-1,91320102MA1X,某某公司,南京\n" * 2_000_000).encode()
TIGHT_MEMORY = 300 * 2**20


def _headers(dataset: str) -> set[str]:
    return set(CONTRACTS[dataset].header_index())


@pytest.mark.parametrize(("file", "region", "dataset"), COUNCIL_UPLOADS)
def test_council_files_read_the_same_with_and_without_the_worker(file, region, dataset) -> None:
    data = (FIXTURES / file).read_bytes()
    in_worker = read_worker.read(data, _headers(dataset), LIMITS)
    in_process = upload_table(data, _headers(dataset), IN_PROCESS)
    assert in_worker.rows.schema == in_process.rows.schema
    assert in_worker.rows.equals(in_process.rows)
    assert dataclasses.replace(in_worker, rows=None) == dataclasses.replace(in_process, rows=None)


@pytest.mark.parametrize("name", ["unbalanced_quotes.csv", "mixed_encodings.csv",
                                  "password_protected.xlsx", "truncated_record.jsonl"])
def test_the_worker_refuses_a_bad_file_with_the_readers_own_code(name: str) -> None:
    path = make_bad.path_of(name, make_bad.HERE)
    dataset = "inspections" if name.endswith(".jsonl") else "merchants"
    with pytest.raises(rj.FileRejected) as refused:
        read_worker.read(path.read_bytes(), _headers(dataset), LIMITS)
    assert refused.value.code == make_bad.CORPUS[name][1]


def test_a_file_needing_more_memory_than_the_limit_is_refused() -> None:
    tight = dataclasses.replace(LIMITS, max_read_memory_bytes=TIGHT_MEMORY)
    with pytest.raises(rj.FileRejected) as refused:
        upload_table(HUNGRY, MERCHANT_HEADERS, tight)
    assert refused.value.code == rj.READ_MEMORY_LIMIT
    assert refused.value.detail == "300 MiB"
    # The same file reads under the default limit, and the worker pool is not broken.
    assert upload_table(HUNGRY, MERCHANT_HEADERS, LIMITS).rows.height == 2_000_000


def test_a_read_past_the_time_limit_is_stopped_and_refused() -> None:
    hurried = dataclasses.replace(LIMITS, max_read_seconds=0.001)
    with pytest.raises(rj.FileRejected) as refused:
        upload_table(HUNGRY, MERCHANT_HEADERS, hurried)
    assert refused.value.code == rj.READ_TIME_LIMIT
    assert refused.value.as_dict("x.csv")["message_en"].startswith(
        "Reading file 'x.csv' took longer than the limit (0.001 s)")
    data = (FIXTURES / "merchants_js_bom.csv").read_bytes()
    assert upload_table(data, MERCHANT_HEADERS, LIMITS).rows.height > 0


def test_concurrent_reads_each_get_a_worker() -> None:
    data = (FIXTURES / "merchants_sh_gb18030.csv").read_bytes()
    failures: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(3):
                read_worker.read(data, MERCHANT_HEADERS, LIMITS)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_an_upload_over_the_memory_limit_gets_a_receipt_and_is_kept(tmp_path) -> None:
    storage = LocalStorage(tmp_path / "root")
    key = "landing/JS/merchants/huge.csv"
    storage.write_bytes(key, HUNGRY)
    settings = Settings(_env_file=None, storage_uri=storage.root_uri, read_memory_limit_mb=300)
    result = ingest_object(storage, settings, key)
    assert (result.status, result.file_error, result.batch_id) == (
        "rejected", rj.READ_MEMORY_LIMIT, None)
    receipt = json.loads(storage.read_bytes(result.receipt))
    [error] = receipt["file_errors"]
    assert error["code"] == rj.READ_MEMORY_LIMIT
    assert "内存" in error["message_zh"] and "memory" in error["message_en"]
    assert list(storage.list("staged/")) == []
    archived = [i for i in storage.list("raw/JS/") if i.size == len(HUNGRY)]
    assert len(archived) == 1 and storage.read_bytes(archived[0].key) == HUNGRY


def test_reading_in_the_worker_can_be_switched_off() -> None:
    limits = read_limits(Settings(_env_file=None, read_in_worker=False))
    assert (limits.max_read_seconds, limits.max_read_memory_bytes) == (None, None)
    assert (LIMITS.max_read_seconds, LIMITS.max_read_memory_bytes) == (300.0, 4096 * 2**20)


def test_a_table_read_in_the_worker_outlives_the_worker() -> None:
    # The rows are mapped from the worker's in-memory file, not copied: they must stay
    # readable after the worker has gone and the reply's objects have been collected.
    data = (FIXTURES / "merchants_js_bom.csv").read_bytes()
    table = read_worker.read(data, MERCHANT_HEADERS, LIMITS)
    expected = upload_table(data, MERCHANT_HEADERS, IN_PROCESS).rows
    read_worker.close_idle_workers()
    gc.collect()
    assert table.rows.equals(expected)
    assert table.rows.with_columns(pl.col("c0").str.to_uppercase()).height == expected.height


def _reading_workers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True)
            if "registry.ingest.read_worker" in " ".join(p.cmdline())]


def test_an_ingest_run_ends_its_idle_workers(tmp_path) -> None:
    # A worker is reused within a run; after it, an idle one would only hold the memory its
    # last read left, beside whatever the process does next (publication, in registry run).
    storage = LocalStorage(tmp_path / "root")
    data = (FIXTURES / "merchants_js_bom.csv").read_bytes()
    storage.write_bytes("landing/JS/merchants/js.csv", data)
    read_worker.read(data, MERCHANT_HEADERS, LIMITS)
    assert _reading_workers()  # the worker of that read waits for the next one
    settings = Settings(_env_file=None, storage_uri=storage.root_uri)
    [result] = ingest_pending(storage, settings).results
    assert (result.status, result.rows_in) == ("staged", 5)
    assert _reading_workers() == []
