"""Ingestion against storage, on local disk and on S3: exactly once, crash-safe, with receipts."""

from __future__ import annotations

import csv
import io
import json
import threading
import time
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from fixtures.council_files import FIXTURES

from registry import layout
from registry.contracts import load_contracts
from registry.ingest import council_time, ingest_object, ingest_pending, list_pending
from registry.settings import Settings
from registry.storage import LocalStorage, Storage

SETTINGS = Settings(_env_file=None)
CONTRACTS = load_contracts(SETTINGS.schemas_dir)
UPLOADS = {
    "landing/SH/merchants/2024Q2/备案汇总.csv": ("merchants_sh_gb18030.csv", 10, 4),
    "landing/JS/merchants/js.csv": ("merchants_js_bom.csv", 5, 3),
    "landing/ZJ/complaints/投诉.xlsx": ("complaints_zj.xlsx", 7, 3),
    "landing/AH/inspections/t.jsonl": ("inspections_ah.jsonl", 5, 3),
    "landing/ZJ/gift_evaluations/scores.parquet": ("gift_evaluations_zj.parquet", 6, 3),
}


def _put(storage: Storage, key: str, fixture: str) -> bytes:
    data = (FIXTURES / fixture).read_bytes()
    storage.write_bytes(key, data)
    return data


def _json(storage: Storage, key: str) -> dict:
    return json.loads(storage.read_bytes(key))


def _keys(storage: Storage, prefix: str) -> list[str]:
    return [info.key for info in storage.list(prefix)]


def test_every_fixture_is_staged_quarantined_recorded_and_receipted(storage: Storage) -> None:
    for key, (fixture, _, _) in UPLOADS.items():
        _put(storage, key, fixture)
    summary = ingest_pending(storage, SETTINGS)
    results = {r.key: r for r in summary.results}
    assert set(results) == set(UPLOADS)
    for key, (_, rows, accepted) in UPLOADS.items():
        r = results[key]
        assert (r.status, r.rows_in, r.accepted, r.quarantined) == (
            "staged", rows, accepted, rows - accepted)
        contract = CONTRACTS[r.dataset]
        record = _json(storage, layout.batch_record_key(r.dataset, r.region, r.batch_id))
        assert record["mode"] == ("replace" if (r.region, r.dataset) == ("SH", "merchants")
                                  else "upsert")
        assert (record["rows_in"], record["accepted"], record["quarantined"]) == (
            rows, accepted, rows - accepted)
        assert (record["status"], record["source_key"], record["sha256"]) == (
            "released", key, r.sha256)
        assert record["contract_version"] == contract.version
        staged = storage.read_parquet(
            layout.staged_prefix(r.dataset, r.region, r.batch_id) + "part-0.parquet")
        assert staged.schema == pl.Schema(contract.staged_schema())
        assert staged.height == accepted
        assert staged["_batch_id"].unique().to_list() == [r.batch_id]
        assert staged["_source_key"].unique().to_list() == [key]
        assert staged["region"].unique().to_list() == [r.region]
        quarantined = storage.read_parquet(
            layout.quarantine_prefix(r.dataset, r.region, r.batch_id) + "part-0.parquet")
        assert quarantined.height == rows - accepted
        assert quarantined["_errors"].list.len().min() >= 1
        assert storage.exists(layout.raw_key(r.region, r.dataset, r.sha256, key.rsplit(".")[-1]))
        ledger = _json(storage, layout.ingest_ledger_key(r.sha256))
        assert (ledger["state"], ledger["batch_id"]) == ("done", r.batch_id)
        receipt = _json(storage, layout.receipt_key(r.region, r.upload_id, "json"))
        assert (receipt["status"], receipt["rows"], receipt["accepted"]) == (
            "partially_accepted", rows, accepted)
        assert len(receipt["row_errors"]) >= rows - accepted
    # batch ids sort by ingest time (uploads are processed in key order)
    ids = [r.batch_id for r in summary.results]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # the xlsx footer is reported to the council
    zj = _json(storage, layout.receipt_key("ZJ", results["landing/ZJ/complaints/投诉.xlsx"]
                                           .upload_id, "json"))
    assert [n["row"] for n in zj["skipped_note_rows"]] == [13, 14]


def test_a_second_run_finds_nothing_to_do(storage: Storage) -> None:
    _put(storage, "landing/AH/inspections/t.jsonl", "inspections_ah.jsonl")
    first = ingest_pending(storage, SETTINGS)
    assert [r.status for r in first.results] == ["staged"]
    before = _keys(storage, "")
    assert list_pending(storage, SETTINGS) == []
    assert ingest_pending(storage, SETTINGS).results == []
    assert _keys(storage, "") == before


def test_same_bytes_under_another_name_are_a_duplicate_not_a_second_batch(
    storage: Storage,
) -> None:
    _put(storage, "landing/AH/inspections/april.jsonl", "inspections_ah.jsonl")
    first = ingest_pending(storage, SETTINGS).results[0]
    _put(storage, "landing/AH/inspections/april (1).jsonl", "inspections_ah.jsonl")
    second = ingest_pending(storage, SETTINGS).results[0]
    assert second.status == "duplicate"
    assert second.duplicate_of == "landing/AH/inspections/april.jsonl"
    assert second.batch_id is None
    assert len(_keys(storage, "ledger/batches/")) == 1
    assert len(_keys(storage, "staged/")) == 1
    receipt = _json(storage, layout.receipt_key("AH", second.upload_id, "json"))
    assert receipt["status"] == "duplicate"
    assert receipt["duplicate_of"]["source_key"] == "landing/AH/inspections/april.jsonl"
    assert receipt["duplicate_of"]["upload_id"] == first.upload_id


def test_a_duplicate_is_recognised_without_reading_its_rows(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A re-upload costs a hash and a ledger lookup, not a parse of every row."""
    import registry.ingest as ingest

    checked: list[str] = []
    real = ingest._upload_checked
    monkeypatch.setattr(ingest, "_upload_checked",
                        lambda *a, **k: checked.append(a[2]) or real(*a, **k))
    _put(storage, "landing/JS/merchants/may.csv", "merchants_js_bom.csv")
    assert ingest_pending(storage, SETTINGS).results[0].status == "staged"
    _put(storage, "landing/JS/merchants/may-again.csv", "merchants_js_bom.csv")
    assert ingest_pending(storage, SETTINGS).results[0].status == "duplicate"
    assert checked == ["may.csv"]


def test_a_duplicate_of_another_councils_upload_does_not_reveal_it(storage: Storage) -> None:
    _put(storage, "landing/ZJ/inspections/secret-name.jsonl", "inspections_ah.jsonl")
    ingest_pending(storage, SETTINGS, region="ZJ")
    _put(storage, "landing/AH/inspections/mine.jsonl", "inspections_ah.jsonl")
    result = ingest_pending(storage, SETTINGS, region="AH").results[0]
    assert result.status == "duplicate"
    raw = storage.read_bytes(layout.receipt_key("AH", result.upload_id, "json")).decode()
    assert "secret-name" not in raw and "ZJ" not in raw


def test_a_changed_file_under_the_same_name_is_ingested_again(storage: Storage) -> None:
    key = "landing/AH/inspections/t.jsonl"
    _put(storage, key, "inspections_ah.jsonl")
    ingest_pending(storage, SETTINGS)
    lines = (FIXTURES / "inspections_ah.jsonl").read_text(encoding="utf-8").splitlines()
    storage.write_bytes(key, ("\n".join(lines[:2]) + "\n").encode())
    assert list_pending(storage, SETTINGS) == [key]
    result = ingest_pending(storage, SETTINGS).results[0]
    assert (result.status, result.rows_in, result.accepted) == ("staged", 2, 2)
    assert len(_keys(storage, "ledger/batches/")) == 2


def _crashed_claim(storage: Storage, key: str, data: bytes, *, age_s: float) -> dict:
    """What a worker that died right after claiming leaves behind."""
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    at = datetime.now(UTC) - timedelta(seconds=age_s)
    entry = {
        "sha256": sha, "state": "claimed", "batch_id": f"20240101T000000000000Z-{sha[:12]}",
        "upload_id": f"20240101T000000000000Z-{sha[:12]}", "source_key": key,
        "region": "AH", "dataset": "inspections", "claimed_at": at.isoformat(),
        "ingested_at": at.isoformat(),
    }
    storage.put_if_absent(layout.ingest_ledger_key(sha), json.dumps(entry).encode())
    return entry


def test_a_claim_left_by_a_crashed_worker_is_taken_over_with_its_batch_id(
    storage: Storage,
) -> None:
    key = "landing/AH/inspections/t.jsonl"
    data = _put(storage, key, "inspections_ah.jsonl")
    entry = _crashed_claim(storage, key, data, age_s=SETTINGS.ingest_claim_lease_s + 60)
    result = ingest_object(storage, SETTINGS, key)
    assert (result.status, result.batch_id) == ("staged", entry["batch_id"])
    assert _keys(storage, "ledger/batches/") == [
        layout.batch_record_key("inspections", "AH", entry["batch_id"])]
    staged = storage.read_parquet(
        layout.staged_prefix("inspections", "AH", entry["batch_id"]) + "part-0.parquet")
    assert staged["_ingested_at"][0] == datetime.fromisoformat(entry["ingested_at"])
    ledger = _json(storage, layout.ingest_ledger_key(entry["sha256"]))
    assert (ledger["state"], ledger["takeovers"]) == ("done", 1)


def test_a_taken_over_claim_of_an_earlier_day_judges_rows_as_of_that_day(
    storage: Storage,
) -> None:
    # Rows are checked before the claim is known, as of today; a takeover keeps the claim's
    # ingest time, so a row dated yesterday was in the future for a claim of three days ago.
    key = "landing/AH/inspections/late.jsonl"
    yesterday = (council_time(datetime.now(UTC)) - timedelta(days=1)).date().isoformat()
    row = {"检测编号": "AH-T-9", "统一社会信用代码": "91340104500010010Q",
           "样品名称": "进口奶粉", "检测日期": yesterday, "检测结论": "合格"}
    data = json.dumps(row, ensure_ascii=False).encode()
    storage.write_bytes(key, data)
    entry = _crashed_claim(storage, key, data, age_s=3 * 86400)
    result = ingest_object(storage, SETTINGS, key)
    assert (result.status, result.batch_id, result.accepted) == ("staged", entry["batch_id"], 0)
    receipt = _json(storage, layout.receipt_key("AH", entry["upload_id"], "json"))
    assert [e["code"] for e in receipt["row_errors"]] == ["DATE_IN_FUTURE"]


def test_a_live_claim_is_left_to_its_worker_and_the_upload_stays_pending(
    storage: Storage,
) -> None:
    key = "landing/AH/inspections/t.jsonl"
    data = _put(storage, key, "inspections_ah.jsonl")
    _crashed_claim(storage, key, data, age_s=1)
    assert ingest_object(storage, SETTINGS, key).status == "in_progress"
    assert _keys(storage, "ledger/batches/") == []
    assert list_pending(storage, SETTINGS) == [key]


def test_a_batch_committed_before_the_crash_is_finished_not_rewritten(storage: Storage) -> None:
    key = "landing/AH/inspections/t.jsonl"
    data = _put(storage, key, "inspections_ah.jsonl")
    entry = _crashed_claim(storage, key, data, age_s=1)
    record_key = layout.batch_record_key("inspections", "AH", entry["batch_id"])
    storage.put_if_absent(record_key, b'{"committed": "earlier"}')
    result = ingest_object(storage, SETTINGS, key)
    assert (result.status, result.batch_id, result.accepted) == ("staged", entry["batch_id"], 3)
    assert _json(storage, record_key) == {"committed": "earlier"}
    assert _keys(storage, "staged/") == []  # the committed batch's files were not touched
    assert list_pending(storage, SETTINGS) == []


def test_file_rejections_get_a_ledger_entry_and_a_receipt_but_no_batch(storage: Storage) -> None:
    _put(storage, "landing/SH/merchants/bad.csv", "merchants_unknown_column.csv")
    result = ingest_pending(storage, SETTINGS).results[0]
    assert (result.status, result.file_error, result.batch_id) == (
        "rejected", "UNKNOWN_COLUMN", None)
    assert _json(storage, layout.ingest_ledger_key(result.sha256))["outcome"]["file_error"] == (
        "UNKNOWN_COLUMN")
    receipt = _json(storage, layout.receipt_key("SH", result.upload_id, "json"))
    assert receipt["status"] == "rejected"
    assert "营业执照照片" in receipt["file_errors"][0]["message_zh"]
    assert _keys(storage, "ledger/batches/") == [] and _keys(storage, "staged/") == []


def test_oversized_and_misplaced_uploads_are_refused_unread(storage: Storage) -> None:
    small = Settings(_env_file=None, max_upload_bytes=100)
    _put(storage, "landing/SH/merchants/big.csv", "merchants_sh_gb18030.csv")
    _put(storage, "landing/SH/photos/x.csv", "merchants_sh_gb18030.csv")
    results = {r.key: r for r in ingest_pending(storage, small).results}
    assert results["landing/SH/merchants/big.csv"].file_error == "FILE_TOO_LARGE"
    assert results["landing/SH/photos/x.csv"].file_error == "UNKNOWN_DATASET"
    assert _keys(storage, "raw/") == []
    assert len(_keys(storage, "landing/SH/_receipts/")) == 4
    assert list_pending(storage, small) == []


def test_receipt_csv_opens_in_excel_and_cannot_run_formulas(storage: Storage) -> None:
    header = "检测编号,统一社会信用代码,样品名称,检测日期,检测结论"
    storage.write_bytes("landing/AH/inspections/x.csv",
                        f'{header}\nT1,"=HYPERLINK(""http://x"")",奶粉,-1,@SUM(1)\n'.encode())
    result = ingest_pending(storage, SETTINGS).results[0]
    raw = storage.read_bytes(layout.receipt_key("AH", result.upload_id, "csv"))
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    # Row errors name their column; the batch-gate lines (no row left: held) do not.
    values = {row[1]: row[3] for row in rows[2:] if row[1]}
    assert values == {
        "uscc": "'=HYPERLINK(\"http://x\")",
        "tested_on": "'-1",
        "result": "'@SUM(1)",
    }
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row)


@pytest.fixture(params=["local", pytest.param("rgw", marks=pytest.mark.rgw)])
def atomic_storage(request: pytest.FixtureRequest, tmp_path) -> Storage:
    """Stores whose create-if-absent is atomic under concurrency, which moto's is not (see
    shared/reference/NOTES.md): local disk and Ceph RGW."""
    if request.param == "rgw":
        return request.getfixturevalue("rgw_storage")
    return LocalStorage(tmp_path / "root")


def test_concurrent_ingests_of_the_same_bytes_make_one_batch(atomic_storage: Storage) -> None:
    storage = atomic_storage
    keys = [f"landing/AH/inspections/copy{i}.jsonl" for i in range(4)]
    for key in keys:
        _put(storage, key, "inspections_ah.jsonl")
    results = []
    threads = [threading.Thread(target=lambda k=k: results.append(
        ingest_object(storage, SETTINGS, k))) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results).count("staged") == 1
    later = ingest_pending(storage, SETTINGS).results  # any left in progress finish now
    statuses = sorted(r.status for r in [*results, *later] if r.status != "in_progress")
    assert statuses == ["duplicate", "duplicate", "duplicate", "staged"]
    assert len(_keys(storage, "ledger/batches/")) == 1


def test_the_same_file_uploaded_again_under_its_name_gets_a_duplicate_receipt(
    storage: Storage,
) -> None:
    key = "landing/AH/inspections/t.jsonl"
    _put(storage, key, "inspections_ah.jsonl")
    first = ingest_pending(storage, SETTINGS).results[0]
    time.sleep(1.1)  # S3 keeps modification times to the second
    _put(storage, key, "inspections_ah.jsonl")  # a council sending the same file again
    again = ingest_pending(storage, SETTINGS).results
    assert [(r.status, r.duplicate_of) for r in again] == [("duplicate", key)]
    receipt = _json(storage, layout.receipt_key("AH", again[0].upload_id, "json"))
    assert receipt["duplicate_of"]["upload_id"] == first.upload_id
    assert len(_keys(storage, "ledger/batches/")) == 1


def test_a_run_that_stopped_before_marking_an_upload_seen_is_finished_quietly(
    storage: Storage,
) -> None:
    key = "landing/AH/inspections/t.jsonl"
    _put(storage, key, "inspections_ah.jsonl")
    first = ingest_pending(storage, SETTINGS).results[0]
    for marker in _keys(storage, layout.SEEN_PREFIX):  # as if the run died before this step
        storage.delete(marker)
    receipts = _keys(storage, "landing/AH/_receipts/")
    again = ingest_pending(storage, SETTINGS).results
    assert [(r.status, r.batch_id) for r in again] == [("staged", first.batch_id)]
    assert _keys(storage, "landing/AH/_receipts/") == receipts  # no second receipt
    assert list_pending(storage, SETTINGS) == []


def test_rows_that_break_the_staged_schema_stop_the_batch_before_it_is_written(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A staged-schema failure is a bug in normalisation or validation: nothing is staged or
    committed, and what the batch gate stored meanwhile goes with the uncommitted batch."""
    import pandera.errors
    import pandera.polars as pa

    import registry.ingest as ingest

    def impossible(contract):
        return pa.DataFrameSchema({"filing_id": pa.Column(str, pa.Check.str_length(99, 99))})

    monkeypatch.setattr(ingest, "staged_schema", impossible)
    key = "landing/JS/merchants/js.csv"
    _put(storage, key, "merchants_js_bom.csv")
    with pytest.raises(pandera.errors.SchemaError):
        ingest_object(storage, SETTINGS, key)
    assert _keys(storage, "staged/") == _keys(storage, "quarantine/") == []
    assert _keys(storage, layout.BATCHES_PREFIX) == []
    [raw] = [k for k in _keys(storage, "raw/JS/") if not k.endswith(".meta.json")]
    assert storage.read_bytes(raw) == (FIXTURES / "merchants_js_bom.csv").read_bytes()
    # The gate ran to the end beside the failed check and stored the batch's Data Docs.
    assert _keys(storage, "reports/batches/merchants/JS/") != []
    later = datetime.now(UTC) + timedelta(seconds=SETTINGS.ingest_claim_lease_s + 60)
    removed = ingest.remove_uncommitted_batches(storage, SETTINGS, cutoff=later, now=later)
    assert len(removed) == 1
    assert _keys(storage, "reports/batches/") == []
