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

from registry import ledger
from registry.config.contracts import load_contracts
from registry.config.settings import Settings
from registry.ingest.pipeline import council_time, ingest_object, ingest_pending, list_pending
from registry.publish.gc import remove_uncommitted_batches
from registry.storage import LocalStorage, Storage, layout

# The pipeline on local disk and S3; RGW's S3 semantics: tests/storage, tests/publish.
pytestmark = pytest.mark.backends("local", "s3")

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


def _put_later(storage: Storage, key: str, fixture: str) -> bytes:
    """Land a file after everything landed so far: S3 keeps last-modified times to the
    second, and an upload's place in its region's order is when it landed."""
    time.sleep(1.1)
    return _put(storage, key, fixture)


def _put_together(storage: Storage, keys: list[str], fixture: str) -> None:
    """Land the same file under every key of ``keys`` in one second (written again if a
    second boundary fell between them), which makes them one upload: the same batch id."""
    for _ in range(5):
        for key in keys:
            _put(storage, key, fixture)
        if len({ledger.landed_time(storage.head(k).last_modified) for k in keys}) == 1:
            return
    raise AssertionError("could not land the copies within one second")


def _batch_id(storage: Storage, key: str, sha256: str) -> str:
    """The batch id of the landing object's current version."""
    return ledger.batch_id_for(storage.head(key).last_modified, sha256)


def _staged_batches(storage: Storage) -> set[str]:
    """The batches whose rows were written under staged/."""
    return {k.split("/batch=")[1].split("/")[0] for k in _keys(storage, "staged/")}


# Which upload is a new batch does not depend on the backend: these rules run on local disk
# only (the ingest path itself, same-second landings included, runs on S3 and Ceph RGW too).
_LOCAL_ONLY = pytest.mark.parametrize("storage", ["local"], indirect=True)

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
        record = ledger.read_batch_record(storage, r.dataset, r.region, r.batch_id)
        assert record is not None and r.case == "new" and record.same_as is None
        assert record.mode == ("replace" if (r.region, r.dataset) == ("SH", "merchants")
                               else "upsert")
        assert (record.rows_in, record.accepted, record.quarantined) == (
            rows, accepted, rows - accepted)
        assert (record.status, record.source_key, record.sha256) == ("released", key, r.sha256)
        assert record.contract_version == contract.version
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
        claim, _ = ledger.read_claim(storage, r.dataset, r.region, r.batch_id)
        assert (claim.state, claim.source_key, claim.upload_id) == ("done", key, r.upload_id)
        assert (claim.outcome.status, claim.outcome.case, claim.outcome.batch_id) == (
            "staged", "new", r.batch_id)
        receipt = _json(storage, r.receipt)
        assert (receipt["status"], receipt["case"], receipt["rows"], receipt["accepted"]) == (
            "partially_accepted", "new", rows, accepted)
        assert len(receipt["row_errors"]) >= rows - accepted
        # The batch id says when the upload landed (to the second) and which bytes it holds;
        # the upload id begins with the same second.
        landed = ledger.landed_time(storage.head(key).last_modified)
        assert r.batch_id == ledger.batch_id_for(landed, r.sha256)
        assert r.upload_id.split("-")[0] == r.batch_id.split("-")[0] == (
            landed.strftime("%Y%m%dT%H%M%SZ"))
    assert len({r.batch_id for r in summary.results}) == len(UPLOADS)
    # the xlsx footer is reported to the council
    zj = _json(storage, results["landing/ZJ/complaints/投诉.xlsx"].receipt)
    assert [n["row"] for n in zj["skipped_note_rows"]] == [13, 14]


def test_a_second_run_finds_nothing_to_do(storage: Storage) -> None:
    _put(storage, "landing/AH/inspections/t.jsonl", "inspections_ah.jsonl")
    first = ingest_pending(storage, SETTINGS)
    assert [r.status for r in first.results] == ["staged"]
    before = _keys(storage, "")
    assert list_pending(storage, SETTINGS) == []
    assert ingest_pending(storage, SETTINGS).results == []
    assert _keys(storage, "") == before


def test_same_bytes_landed_later_under_another_name_are_a_duplicate_of_the_latest_batch(
    storage: Storage,
) -> None:
    _put(storage, "landing/AH/inspections/april.jsonl", "inspections_ah.jsonl")
    first = ingest_pending(storage, SETTINGS).results[0]
    _put_later(storage, "landing/AH/inspections/april (1).jsonl", "inspections_ah.jsonl")
    second = ingest_pending(storage, SETTINGS).results[0]
    assert (second.status, second.case) == ("duplicate", "duplicate")
    assert second.duplicate_of == "landing/AH/inspections/april.jsonl"
    # A record of its own in the region's order, reading the rows the first batch staged.
    assert second.batch_id not in (None, first.batch_id)
    original = ledger.read_batch_record(storage, "inspections", "AH", first.batch_id)
    duplicate = ledger.read_batch_record(storage, "inspections", "AH", second.batch_id)
    assert (duplicate.same_as, duplicate.stages) == (first.batch_id, first.batch_id)
    assert (duplicate.source_key, duplicate.sha256) == (second.key, first.sha256)
    assert duplicate.staged_key == original.staged_key
    assert ledger.committed_refs(storage) == {("inspections", "AH", first.batch_id),
                                              ("inspections", "AH", second.batch_id)}
    assert _staged_batches(storage) == {first.batch_id}  # no rows written twice
    receipt = _json(storage, second.receipt)
    assert (receipt["status"], receipt["case"]) == ("duplicate", "duplicate")
    assert receipt["duplicate_of"] == {"batch_id": first.batch_id,
                                       "source_key": "landing/AH/inspections/april.jsonl",
                                       "status": original.status}


def test_same_bytes_landed_in_the_same_second_under_two_names_are_one_batch(
    storage: Storage,
) -> None:
    keys = ["landing/AH/inspections/april.jsonl", "landing/AH/inspections/april (1).jsonl"]
    _put_together(storage, keys, "inspections_ah.jsonl")
    results = {r.key: r for r in ingest_pending(storage, SETTINGS).results}
    first, second = (results[k] for k in sorted(keys))  # taken in key order
    assert (first.status, first.case) == ("staged", "new")
    assert (second.status, second.case) == ("duplicate", "duplicate")
    assert second.batch_id == first.batch_id and second.duplicate_of == first.key
    assert ledger.committed_refs(storage) == {("inspections", "AH", first.batch_id)}
    receipt = _json(storage, second.receipt)
    assert receipt["case"] == "duplicate"
    assert receipt["duplicate_of"]["batch_id"] == first.batch_id
    assert receipt["duplicate_of"]["source_key"] == first.key
    assert list_pending(storage, SETTINGS) == []


def test_an_upload_processed_before_is_recognised_without_reading_its_rows(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same upload under a second name in the same second, or met again by a run that
    lost its seen marker, costs a hash and a claim lookup, not a parse of every row."""
    import registry.ingest.pipeline as ingest

    checked: list[str] = []
    real = ingest._upload_checked
    monkeypatch.setattr(ingest, "_upload_checked",
                        lambda *a, **k: checked.append(a[2]) or real(*a, **k))
    _put_together(storage, ["landing/JS/merchants/may.csv", "landing/JS/merchants/may-again.csv"],
                  "merchants_js_bom.csv")
    assert sorted(r.status for r in ingest_pending(storage, SETTINGS).results) == [
        "duplicate", "staged"]
    assert checked == ["may-again.csv"]  # the first in key order
    ledger.forget_seen(storage)
    assert sorted(r.status for r in ingest_pending(storage, SETTINGS).results) == [
        "duplicate", "staged"]
    assert checked == ["may-again.csv"]


@_LOCAL_ONLY
def test_the_same_bytes_from_another_council_are_its_own_batch_and_do_not_reveal_the_first(
    storage: Storage,
) -> None:
    _put(storage, "landing/ZJ/inspections/secret-name.jsonl", "inspections_ah.jsonl")
    (zj,) = ingest_pending(storage, SETTINGS, region="ZJ").results
    _put_later(storage, "landing/AH/inspections/mine.jsonl", "inspections_ah.jsonl")
    result = ingest_pending(storage, SETTINGS, region="AH").results[0]
    # Judged in Anhui's own terms: a new batch of Anhui's, not a duplicate of Zhejiang's.
    assert (result.status, result.case, result.duplicate_of) == ("staged", "new", None)
    assert result.sha256 == zj.sha256
    record = ledger.read_batch_record(storage, "inspections", "AH", result.batch_id)
    assert (record.region, record.same_as, record.accepted) == ("AH", None, result.accepted)
    assert result.batch_id in _staged_batches(storage)
    raw = storage.read_bytes(result.receipt).decode()
    assert "secret-name" not in raw and "ZJ" not in raw


@_LOCAL_ONLY
def test_same_bytes_sent_to_the_wrong_dataset_then_the_right_one_are_staged_in_the_right_one(
    storage: Storage,
) -> None:
    """A clerk drops the inspections file into complaints first: refused there in complaints'
    terms. The very same file sent to inspections is then a batch of inspections."""
    _put(storage, "landing/AH/complaints/t.jsonl", "inspections_ah.jsonl")
    (wrong,) = ingest_pending(storage, SETTINGS).results
    assert (wrong.status, wrong.case, wrong.batch_id) == ("rejected", "rejected", None)
    _put_later(storage, "landing/AH/inspections/t.jsonl", "inspections_ah.jsonl")
    (right,) = ingest_pending(storage, SETTINGS).results
    assert (right.status, right.case, right.accepted) == ("staged", "new", 3)
    assert right.sha256 == wrong.sha256
    assert ledger.committed_refs(storage) == {("inspections", "AH", right.batch_id)}
    assert _json(storage, right.receipt)["case"] == "new"


@_LOCAL_ONLY
def test_a_councils_file_sent_first_by_another_council_is_judged_in_each_councils_terms(
    storage: Storage,
) -> None:
    """Shanghai uploads Jiangsu's merchants list by mistake, then Jiangsu uploads the same
    bytes: each region has its own latest batch, so Jiangsu's is not a duplicate and its rows
    are checked as Jiangsu's."""
    _put(storage, "landing/SH/merchants/m.csv", "merchants_js_bom.csv")
    (sh,) = ingest_pending(storage, SETTINGS).results
    _put_later(storage, "landing/JS/merchants/m.csv", "merchants_js_bom.csv")
    (js,) = ingest_pending(storage, SETTINGS).results
    assert (sh.case, js.case) == ("new", "new") and sh.sha256 == js.sha256
    assert sh.accepted < js.accepted == 3
    assert ledger.committed_refs(storage) == {("merchants", "SH", sh.batch_id),
                                              ("merchants", "JS", js.batch_id)}


@_LOCAL_ONLY
def test_the_bytes_of_an_earlier_batch_sent_after_another_are_a_new_batch(
    storage: Storage,
) -> None:
    """List A, then B, then A again: A is no longer the latest batch, so sending it restores it
    (a new batch, staged again), where sending B again would change nothing."""
    key = "landing/AH/inspections/t.jsonl"
    a = _put(storage, key, "inspections_ah.jsonl")
    (first,) = ingest_pending(storage, SETTINGS).results
    lines = a.decode("utf-8").splitlines()
    time.sleep(1.1)
    storage.write_bytes(key, ("\n".join(lines[:2]) + "\n").encode())
    (b,) = ingest_pending(storage, SETTINGS).results
    _put_later(storage, key, "inspections_ah.jsonl")
    (again,) = ingest_pending(storage, SETTINGS).results
    assert [r.case for r in (first, b, again)] == ["new", "new", "new"]
    assert again.sha256 == first.sha256 and again.batch_id != first.batch_id
    assert again.accepted == first.accepted
    assert _staged_batches(storage) == {first.batch_id, b.batch_id, again.batch_id}
    in_effect = [r.batch_id for e in ledger.batches_in_effect(storage) for r in e.batches]
    assert in_effect == [first.batch_id, b.batch_id, again.batch_id]


def test_a_changed_file_under_the_same_name_is_ingested_again(storage: Storage) -> None:
    key = "landing/AH/inspections/t.jsonl"
    _put(storage, key, "inspections_ah.jsonl")
    ingest_pending(storage, SETTINGS)
    lines = (FIXTURES / "inspections_ah.jsonl").read_text(encoding="utf-8").splitlines()
    storage.write_bytes(key, ("\n".join(lines[:2]) + "\n").encode())
    assert list_pending(storage, SETTINGS) == [key]
    result = ingest_pending(storage, SETTINGS).results[0]
    assert (result.status, result.rows_in, result.accepted) == ("staged", 2, 2)
    assert len(ledger.committed_refs(storage)) == 2


def _crashed_claim(storage: Storage, key: str, data: bytes, *, age_s: float
                  ) -> ledger.IngestClaim:
    """What a worker that died right after claiming leaves behind."""
    import hashlib

    import registry.ingest.pipeline as ingest

    info = storage.head(key)
    sha = hashlib.sha256(data).hexdigest()
    landed = ledger.landed_time(info.last_modified)
    at = datetime.now(UTC) - timedelta(seconds=age_s)
    claim = ledger.IngestClaim(
        batch_id=ledger.batch_id_for(landed, sha), upload_id=ingest._upload_id(info),
        region="AH", dataset="inspections", sha256=sha, source_key=key,
        version=ingest._version(info), landed_at=landed, claimed_at=at, ingested_at=at,
        state="claimed",
    )
    assert ledger.create_claim(storage, claim) is not None
    return claim


def test_a_claim_left_by_a_crashed_worker_is_taken_over_with_its_batch_id(
    storage: Storage,
) -> None:
    key = "landing/AH/inspections/t.jsonl"
    data = _put(storage, key, "inspections_ah.jsonl")
    crashed = _crashed_claim(storage, key, data, age_s=SETTINGS.ingest_claim_lease_s + 60)
    result = ingest_object(storage, SETTINGS, key)
    assert (result.status, result.batch_id) == ("staged", crashed.batch_id)
    assert ledger.committed_refs(storage) == {("inspections", "AH", crashed.batch_id)}
    staged = storage.read_parquet(
        layout.staged_prefix("inspections", "AH", crashed.batch_id) + "part-0.parquet")
    assert staged["_ingested_at"][0] == crashed.ingested_at
    claim, _ = ledger.read_claim(storage, "inspections", "AH", crashed.batch_id)
    assert (claim.state, claim.takeovers, claim.outcome.status) == ("done", 1, "staged")


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
    crashed = _crashed_claim(storage, key, data, age_s=3 * 86400)
    result = ingest_object(storage, SETTINGS, key)
    assert (result.status, result.batch_id, result.accepted) == ("staged", crashed.batch_id, 0)
    receipt = _json(storage, result.receipt)
    assert [e["code"] for e in receipt["row_errors"]] == ["DATE_IN_FUTURE"]


def test_a_live_claim_is_left_to_its_worker_and_the_upload_stays_pending(
    storage: Storage,
) -> None:
    key = "landing/AH/inspections/t.jsonl"
    data = _put(storage, key, "inspections_ah.jsonl")
    _crashed_claim(storage, key, data, age_s=1)
    assert ingest_object(storage, SETTINGS, key).status == "in_progress"
    assert ledger.committed_refs(storage) == set()
    assert list_pending(storage, SETTINGS) == [key]


def test_a_batch_committed_before_the_crash_is_finished_not_rewritten(storage: Storage) -> None:
    from staged_rows import batch_record

    key = "landing/AH/inspections/t.jsonl"
    data = _put(storage, key, "inspections_ah.jsonl")
    crashed = _crashed_claim(storage, key, data, age_s=1)
    # The record the dead worker committed (its counts differ from a fresh check's, so that a
    # rewrite would show).
    earlier = batch_record(crashed.batch_id, dataset="inspections", region="AH", rows=2
                           ).model_copy(update={"sha256": crashed.sha256, "source_key": key,
                                                "landed_at": crashed.landed_at})
    ledger.commit_batch(storage, earlier)
    result = ingest_object(storage, SETTINGS, key)
    assert (result.status, result.batch_id, result.accepted) == ("staged", crashed.batch_id, 3)
    assert ledger.read_batch_record(storage, "inspections", "AH", crashed.batch_id) == earlier
    assert _keys(storage, "staged/") == []  # the committed batch's files were not touched
    assert ledger.read_claim(storage, "inspections", "AH", crashed.batch_id)[0].state == "done"
    assert list_pending(storage, SETTINGS) == []


def test_file_rejections_get_a_claim_and_a_receipt_but_no_batch(storage: Storage) -> None:
    key = "landing/SH/merchants/bad.csv"
    _put(storage, key, "merchants_unknown_column.csv")
    result = ingest_pending(storage, SETTINGS).results[0]
    assert (result.status, result.case, result.file_error, result.batch_id) == (
        "rejected", "rejected", "UNKNOWN_COLUMN", None)
    claim, _ = ledger.read_claim(storage, "merchants", "SH",
                                 _batch_id(storage, key, result.sha256))
    assert (claim.outcome.case, claim.outcome.file_error) == ("rejected", "UNKNOWN_COLUMN")
    receipt = _json(storage, result.receipt)
    assert (receipt["status"], receipt["case"]) == ("rejected", "rejected")
    assert "营业执照照片" in receipt["file_errors"][0]["message_zh"]
    assert ledger.committed_refs(storage) == set() and _keys(storage, "staged/") == []


@_LOCAL_ONLY
def test_a_refused_file_sent_again_is_refused_again_not_called_a_duplicate(
    storage: Storage,
) -> None:
    """A file-level rejection makes no batch, so it blocks nothing: the same bytes sent again
    (uncorrected) get a refusal of their own, with the reasons, not a duplicate receipt."""
    _put(storage, "landing/SH/merchants/bad.csv", "merchants_unknown_column.csv")
    (first,) = ingest_pending(storage, SETTINGS).results
    _put_later(storage, "landing/SH/merchants/bad (1).csv", "merchants_unknown_column.csv")
    (again,) = ingest_pending(storage, SETTINGS).results
    assert (again.status, again.case, again.file_error, again.duplicate_of) == (
        "rejected", "rejected", "UNKNOWN_COLUMN", None)
    assert again.upload_id != first.upload_id
    receipt = _json(storage, again.receipt)
    assert (receipt["status"], receipt["duplicate_of"]) == ("rejected", None)
    assert receipt["file_errors"][0]["code"] == "UNKNOWN_COLUMN"


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
    raw = storage.read_bytes(layout.receipt_key("AH", result.upload_id, "x.csv", "csv"))
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


def test_concurrent_ingests_of_the_same_bytes_landed_together_make_one_batch(
    atomic_storage: Storage,
) -> None:
    storage = atomic_storage
    keys = [f"landing/AH/inspections/copy{i}.jsonl" for i in range(4)]
    _put_together(storage, keys, "inspections_ah.jsonl")  # one batch id for all four
    results = []
    threads = [threading.Thread(target=lambda k=k: results.append(
        ingest_object(storage, SETTINGS, k))) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in results).count("staged") == 1
    later = ingest_pending(storage, SETTINGS).results  # any left in progress finish now
    done = [r for r in [*results, *later] if r.status != "in_progress"]
    assert sorted(r.status for r in done) == ["duplicate", "duplicate", "duplicate", "staged"]
    assert len({r.batch_id for r in done}) == 1
    assert len(ledger.committed_refs(storage)) == 1 and len(_staged_batches(storage)) == 1


def test_the_same_file_uploaded_again_under_its_name_gets_a_duplicate_receipt(
    storage: Storage,
) -> None:
    key = "landing/AH/inspections/t.jsonl"
    _put(storage, key, "inspections_ah.jsonl")
    first = ingest_pending(storage, SETTINGS).results[0]
    _put_later(storage, key, "inspections_ah.jsonl")  # a council sending the same file again
    again = ingest_pending(storage, SETTINGS).results
    assert [(r.status, r.case, r.duplicate_of) for r in again] == [
        ("duplicate", "duplicate", key)]
    receipt = _json(storage, again[0].receipt)
    assert again[0].upload_id != first.upload_id
    assert receipt["duplicate_of"]["batch_id"] == first.batch_id
    assert receipt["duplicate_of"]["source_key"] == key
    record = ledger.read_batch_record(storage, "inspections", "AH", again[0].batch_id)
    assert record.same_as == first.batch_id
    assert _staged_batches(storage) == {first.batch_id}


def test_a_run_that_stopped_before_marking_an_upload_seen_is_finished_quietly(
    storage: Storage,
) -> None:
    key = "landing/AH/inspections/t.jsonl"
    _put(storage, key, "inspections_ah.jsonl")
    first = ingest_pending(storage, SETTINGS).results[0]
    assert ledger.forget_seen(storage) == 1  # as if the run died before this step
    receipts = _keys(storage, "landing/AH/_receipts/")
    again = ingest_pending(storage, SETTINGS).results
    assert [(r.status, r.case, r.batch_id) for r in again] == [
        ("staged", "new", first.batch_id)]
    assert _keys(storage, "landing/AH/_receipts/") == receipts  # no second receipt
    assert list_pending(storage, SETTINGS) == []


def test_rows_that_break_the_staged_schema_stop_the_batch_before_it_is_written(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A staged-schema failure is a bug in normalisation or validation: nothing is staged or
    committed, and what the batch gate stored meanwhile goes with the uncommitted batch."""
    import pandera.errors
    import pandera.polars as pa

    import registry.ingest.pipeline as ingest

    def impossible(contract):
        return pa.DataFrameSchema({"filing_id": pa.Column(str, pa.Check.str_length(99, 99))})

    monkeypatch.setattr(ingest, "staged_schema", impossible)
    key = "landing/JS/merchants/js.csv"
    _put(storage, key, "merchants_js_bom.csv")
    with pytest.raises(pandera.errors.SchemaError):
        ingest_object(storage, SETTINGS, key)
    assert _keys(storage, "staged/") == _keys(storage, "quarantine/") == []
    assert ledger.committed_refs(storage) == set()
    [raw] = [k for k in _keys(storage, "raw/JS/") if not k.endswith(".meta.json")]
    assert storage.read_bytes(raw) == (FIXTURES / "merchants_js_bom.csv").read_bytes()
    # The gate ran to the end beside the failed check and stored the batch's Data Docs.
    assert _keys(storage, "reports/batches/merchants/JS/") != []
    later = datetime.now(UTC) + timedelta(seconds=SETTINGS.ingest_claim_lease_s + 60)
    removed = remove_uncommitted_batches(storage, SETTINGS, cutoff=later, now=later)
    assert len(removed) == 1
    assert _keys(storage, "reports/batches/") == []
