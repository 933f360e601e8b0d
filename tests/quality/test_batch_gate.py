"""The batch gate through ingestion: every kind of batch-level failure holds the batch (staged,
left out of publication, the receipt says why), and a release makes it count."""

from __future__ import annotations

import json
import shutil
from datetime import date

import pytest
import yaml
from gate_uploads import inspections_csv, land, merchants_csv

from registry import ledger
from registry.config.settings import Settings
from registry.ingest.pipeline import ingest_object, ingest_pending
from registry.publish import publish_snapshot
from registry.quality import batch_listings, release_batch
from registry.snapshot.reader import open_snapshot
from registry.storage import LocalStorage, Storage
from registry.storage.layout import batch_docs_prefix

# The pipeline on local disk and S3; RGW's S3 semantics: tests/storage, tests/publish.
pytestmark = pytest.mark.backends("local", "s3")

SETTINGS = Settings(_env_file=None)
AS_OF = date(2026, 11, 30)


@pytest.fixture
def local(tmp_path) -> Storage:
    return LocalStorage(tmp_path / "root")


@pytest.fixture
def complete_inspection_lists(tmp_path) -> Settings:
    """The project's configuration, except that Anhui's inspection uploads are complete lists
    (replace mode)."""
    config = tmp_path / "config"
    shutil.copytree(SETTINGS.config_dir, config)
    path = config / "regions.yaml"
    regions = yaml.safe_load(path.read_text(encoding="utf-8"))
    regions["regions"]["AH"]["upload_modes"] = {"inspections": "replace"}
    path.write_text(yaml.safe_dump(regions, allow_unicode=True), encoding="utf-8")
    return Settings(_env_file=None, config_dir=config)


def _ingest_one(storage: Storage, key: str, data: bytes, settings: Settings = SETTINGS):
    land(storage, key, data)
    (result,) = ingest_pending(storage, settings).results
    assert result.status == "staged"
    record = ledger.read_batch_record(storage, result.dataset, result.region, result.batch_id)
    receipt = json.loads(storage.read_bytes(result.receipt))
    return result, record, receipt


def _assert_held(result, record, receipt, code: str) -> None:
    assert result.held
    assert record.status == "held"
    assert code in record.held_reasons
    assert receipt["batch_status"] == "held"
    reasons = [r for r in receipt["held_reasons"] if r["code"] == code]
    assert reasons and reasons[0]["message_zh"] and reasons[0]["message_en"]
    assert "暂扣" in receipt["summary_zh"] and "held" in receipt["summary_en"]


def test_a_clean_batch_is_released(local: Storage) -> None:
    result, record, receipt = _ingest_one(local, "landing/SH/merchants/m.csv", merchants_csv(10))
    assert not result.held and record.status == "released"
    assert record.held_reasons == [] and receipt["batch_status"] == "released"
    assert record.quality["evaluated"] == record.quality["passed"] > 10
    assert record.quality["rows"] == 10


def test_a_batch_without_a_usable_row_is_held_below_the_floor(local: Storage) -> None:
    # Every row has a broken code: all quarantined, nothing left to publish.
    data = merchants_csv(3).replace(b",913100", b",X13100")
    result, record, receipt = _ingest_one(local, "landing/SH/merchants/m.csv", data)
    assert (result.accepted, result.quarantined) == (0, 3)
    _assert_held(result, record, receipt, "batch_rows_below_floor")


def test_a_truncated_replace_list_is_held_against_the_previous_full_list(local: Storage
                                                                          ) -> None:
    first, record, _ = _ingest_one(local, "landing/SH/merchants/full.csv", merchants_csv(20))
    assert record.mode == "replace" and record.status == "released"
    # Half the province's list: 10 rows against 20, below the configured 80%.
    result, record, receipt = _ingest_one(local, "landing/SH/merchants/half.csv",
                                          merchants_csv(10, start=100))
    _assert_held(result, record, receipt, "batch_rows_below_previous")
    assert first.batch_id in receipt["held_reasons"][0]["message_en"]
    # The held list does not replace the full one: the published registry keeps 20 filings.
    publish_snapshot(local, SETTINGS, as_of=AS_OF)
    assert open_snapshot(local).merchants.collect().height == 20


def test_a_replace_list_that_keeps_its_size_is_released(local: Storage) -> None:
    _ingest_one(local, "landing/SH/merchants/full.csv", merchants_csv(20))
    result, record, _ = _ingest_one(local, "landing/SH/merchants/next.csv",
                                    merchants_csv(18, start=100))
    assert record.status == "released" and not result.held


def test_a_column_suddenly_empty_is_held_at_the_null_ceiling(local: Storage) -> None:
    # Shanghai's template carries district; a ceiling of 50% empty applies to it.
    result, record, receipt = _ingest_one(
        local, "landing/SH/merchants/m.csv", merchants_csv(10, empty_districts=6))
    _assert_held(result, record, receipt, "batch_null_rate")
    (failure,) = [f for f in record.quality["failures"] if f["code"] == "batch_null_rate"]
    assert failure["column"] == "district" and "60.0%" in failure["message_en"]


def test_an_implausible_pass_rate_in_a_complete_list_is_held(
        local: Storage, complete_inspection_lists: Settings) -> None:
    result, record, receipt = _ingest_one(local, "landing/AH/inspections/t.csv",
                                          inspections_csv(["pass", "fail", "fail", "fail"]),
                                          complete_inspection_lists)
    assert result.accepted == 4 and record.mode == "replace"
    _assert_held(result, record, receipt, "batch_implausible_pass_rate")
    assert "25%" in receipt["held_reasons"][0]["message_en"]


def test_a_plausible_pass_rate_in_a_complete_list_is_released(
        local: Storage, complete_inspection_lists: Settings) -> None:
    _, record, _ = _ingest_one(local, "landing/AH/inspections/t.csv",
                               inspections_csv(["pass", "pass", "fail"]),
                               complete_inspection_lists)
    assert record.status == "released" and record.quality["skipped"] == []


def test_an_upsert_batch_of_failures_is_released_and_says_what_it_did_not_check(
        local: Storage) -> None:
    # Anhui's inspections are upserts: a batch of failures is news, not a wrong export.
    result, record, receipt = _ingest_one(local, "landing/AH/inspections/t.csv",
                                          inspections_csv(["fail", "fail", "fail"]))
    assert not result.held and record.status == "released"
    assert receipt["batch_status"] == "released"
    (skipped,) = record.quality["skipped"]
    assert (skipped["code"], skipped["reason"]) == ("batch_implausible_pass_rate",
                                                    "complete_list_only")
    assert skipped["message_zh"] and "upsert" in skipped["message_en"]
    assert record.quality["evaluated"] == record.quality["passed"]


def test_a_mostly_suspended_complete_list_is_held_for_that_alone(local: Storage) -> None:
    result, record, receipt = _ingest_one(local, "landing/SH/merchants/m.csv",
                                          merchants_csv(10, suspended=7))
    _assert_held(result, record, receipt, "batch_implausible_distribution")
    assert record.held_reasons == ["batch_implausible_distribution"]
    assert record.quality["skipped"] == []
    assert "30% of filings are active" in receipt["held_reasons"][0]["message_en"]


def test_dates_outside_the_sane_window_are_held(local: Storage) -> None:
    # 1999 is before any filing of the programme: a misread export, though each row is valid.
    result, record, receipt = _ingest_one(local, "landing/SH/merchants/m.csv",
                                          merchants_csv(5, valid_from="1999-01-01"))
    assert result.accepted == 5
    _assert_held(result, record, receipt, "batch_dates_out_of_window")


def test_a_held_batch_is_published_once_released(storage: Storage) -> None:
    key = land(storage, "landing/SH/merchants/m.csv", merchants_csv(4, suspended=3))
    land(storage, "landing/AH/inspections/t.csv", inspections_csv(["pass", "fail"]))
    results = {r.key: r for r in ingest_pending(storage, SETTINGS).results}
    held = results[key]
    assert held.held
    assert [b.batch_id for b in batch_listings(storage, held_only=True)] == [held.batch_id]
    assert held.batch_id not in {b.batch_id for b in ledger.publishable_batches(storage)}
    first = publish_snapshot(storage, SETTINGS, as_of=AS_OF)
    manifest = open_snapshot(storage).manifest
    assert held.batch_id not in manifest.input_batches

    release = release_batch(storage, held.batch_id, reason="经核实，多数商户确已暂停经营",
                            by="engineer-li")
    assert release["released_by"] == "engineer-li" and release["released_at"]
    (record,) = ledger.find_batch(storage, held.batch_id)
    stored = ledger.read_release(storage, record)
    assert (stored.reason, stored.released_by) == ("经核实，多数商户确已暂停经营", "engineer-li")
    assert held.batch_id in ledger.released_ids(storage)
    assert batch_listings(storage, held_only=True) == []

    second = publish_snapshot(storage, SETTINGS, as_of=AS_OF)
    assert second.previous_snapshot == first.snapshot_id
    assert held.batch_id in open_snapshot(storage).manifest.input_batches
    assert open_snapshot(storage).manifest.input_batches == sorted(
        [*manifest.input_batches, held.batch_id])


def test_each_batch_s_data_docs_show_its_own_run(local: Storage, site_builds) -> None:
    # A complete list and then one half its size, in one ingest run: the first is released and
    # the second held. Their Data Docs are built together at the end of the run, with the
    # templates compiled once per process (registry._compat.gx), yet each batch's pages show
    # its own run, not the other's.
    land(local, "landing/SH/merchants/full.csv", merchants_csv(20))
    land(local, "landing/SH/merchants/half.csv", merchants_csv(10, start=100))
    released, held = (ledger.read_batch_record(local, r.dataset, r.region, r.batch_id)
                      for r in ingest_pending(local, SETTINGS).results)
    assert (released.status, held.status) == ("released", "held")
    prefixes = [batch_docs_prefix("merchants", "SH", r.batch_id) for r in (released, held)]
    assert site_builds == [prefixes]
    for record, prefix, own, status in ((released, prefixes[0], "Success", "Succeeded"),
                                        (held, prefixes[1], "Failed", "Failed")):
        assert record.data_docs == prefix + "index.html"
        index = local.read_bytes(record.data_docs).decode()
        assert index.count("'_validation_success_text'") == 1
        assert f"'_validation_success_text': '{own}'" in index
        (page,) = [i.key for i in local.list(prefix) if "/validations/" in i.key]
        # The run's own status and row count, on its own page.
        text = local.read_bytes(page).decode()
        assert f"</i> {status}" in text
        assert f'<div class="show-scrollbars">{record.accepted}</div>' in text


def test_an_upload_ingested_on_its_own_stores_its_data_docs_with_its_batch(
        local: Storage, site_builds) -> None:
    # What a Dask worker does: no ingest run gathers the Data Docs, the batch stores its own.
    key = land(local, "landing/SH/merchants/m.csv", merchants_csv(5))
    result = ingest_object(local, SETTINGS, key)
    record = ledger.read_batch_record(local, "merchants", "SH", result.batch_id)
    assert site_builds == [[batch_docs_prefix("merchants", "SH", result.batch_id)]]
    assert "'_validation_success_text': 'Success'" in local.read_bytes(record.data_docs).decode()


@pytest.mark.slow
def test_the_ingest_flow_builds_its_batches_data_docs_once_at_its_end(
        prefect_home, tmp_path, monkeypatch, site_builds) -> None:
    from flows.ingest import ingest_flow

    storage = LocalStorage(tmp_path / "root")
    monkeypatch.setenv("REGISTRY_STORAGE_URI", storage.root_uri)
    land(storage, "landing/SH/merchants/m.csv", merchants_csv(6))
    land(storage, "landing/AH/inspections/t.csv", inspections_csv(["pass", "fail", "pass"]))
    results = ingest_flow().results
    records = [ledger.read_batch_record(storage, r.dataset, r.region, r.batch_id)
               for r in results]
    assert len(site_builds) == 1
    assert sorted(site_builds[0]) == sorted(
        batch_docs_prefix(r.dataset, r.region, r.batch_id) for r in records)
    for record in records:
        index = storage.read_bytes(record.data_docs).decode()
        assert f"staged_{record.dataset}" in index
