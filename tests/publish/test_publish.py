"""The publication protocol on local storage and on S3 (moto over HTTP): snapshots, manifest,
commit log, latest pointer, deltas, PII guard, single writer, rollback and gc.

The whole publication path and the PII refusals also run on Ceph RGW; the tests marked
`local_and_moto` are the same protocol over the same storage calls, whose behaviour on RGW the
storage suite (tests/storage) and the racing publishers (test_publish_rgw.py) check, so they
run on local storage and moto only."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
from counted_reads import CountingReads
from staged_rows import AS_OF, merchant, stage_batch, stage_three_regions, uscc

from registry import ledger
from registry.publish import (
    ConcurrentPublish,
    PIIRefused,
    collect_garbage,
    pii_findings,
    publish_snapshot,
    recover_latest,
    rollback_snapshot,
)
from registry.snapshot.reader import (
    open_snapshot,
    read_latest,
    read_log,
    verify_snapshot,
)
from registry.storage import LocalStorage, Storage
from registry.storage.layout import LATEST_KEY, SNAPSHOTS_PREFIX, log_key, manifest_key

# The `storage` fixture's backends without Ceph RGW (see the module docstring).
local_and_moto = pytest.mark.parametrize("storage", ["local", "s3"], indirect=True)


def snapshot_folders(storage: Storage) -> set[str]:
    return {
        info.key[len(SNAPSHOTS_PREFIX):].split("/", 1)[0]
        for info in storage.list(SNAPSHOTS_PREFIX)
    }


def test_whole_publication_path(staged: Storage, settings):
    first = publish_snapshot(staged, settings, as_of=AS_OF)

    assert first.seq == 1 and first.previous_snapshot is None
    assert first.rows == {"merchants": 4, "products": 1, "changes": 4, "complaints_summary": 1}
    assert first.changes == {"added": 4}
    manifest = json.loads(staged.read_bytes(manifest_key(first.snapshot_id)))
    assert [f["path"] for f in manifest["files"]] == [
        "merchants.parquet", "products.parquet", "changes.parquet", "complaints_summary.parquet",
    ]
    assert manifest["output_contract_versions"]["complaints_summary"] == 1
    assert all(len(f["sha256"]) == 64 and f["bytes"] > 0 for f in manifest["files"])
    assert manifest["as_of"] == "2026-11-30"
    assert manifest["score_model"]["version"] == 1
    assert manifest["contract_versions"].keys() == {
        "merchants", "complaints", "inspections", "gift_evaluations",
    }
    assert manifest["input_batches"] == sorted(manifest["input_batches"])
    assert len(manifest["input_batches"]) == 6
    assert manifest["previous_snapshot"] is None and manifest["code_version"]

    entry = json.loads(staged.read_bytes(log_key(1)))
    assert entry["action"] == "publish" and entry["snapshot_id"] == first.snapshot_id
    latest = json.loads(staged.read_bytes(LATEST_KEY))
    assert latest["snapshot_id"] == first.snapshot_id and latest["seq"] == 1
    assert verify_snapshot(staged) == []

    snap = open_snapshot(staged)
    merchants = snap.merchants.collect()
    revoked = merchants.filter(pl.col("uscc") == uscc("31", 1)).row(0, named=True)
    assert revoked["score"] >= 85 and revoked["grade"] is None
    assert revoked["trusted"] is False and revoked["verdict"] == "disqualified"
    assert revoked["regions"] == ["SH"]  # AH's revoked filing only disqualifies
    assert merchants.filter(pl.col("trusted")).height == 3
    assert merchants.get_column("first_listed_on").to_list() == [AS_OF] * 4
    # SH's one complaint, still unresolved, in the joint complaint analysis.
    complaints = snap.complaints_summary.collect()
    assert complaints.select("region", "category", "month", "received", "unresolved").rows() == [
        ("SH", "quality", date(2026, 6, 1), 1, 1)]

    # A month later a council files one more merchant and a complaint ages nothing out yet.
    later = AS_OF + timedelta(days=30)
    stage_batch(staged, "merchants", "ZJ", "20261201T000000Z-zj9",
                [merchant(filing_id="ZJ-2", uscc=uscc("33", 2), city="宁波")])
    second = publish_snapshot(staged, settings, as_of=later)
    assert second.seq == 2 and second.previous_snapshot == first.snapshot_id
    assert second.snapshot_id > first.snapshot_id  # ids sort by time
    assert second.changes == {"added": 1}
    snap2 = open_snapshot(staged)
    assert snap2.snapshot_id == second.snapshot_id
    dates = snap2.merchants.select("uscc", "first_listed_on", "last_changed_on").collect()
    new = dates.filter(pl.col("uscc") == uscc("33", 2)).row(0)
    old = dates.filter(pl.col("uscc") == uscc("31", 2)).row(0)
    assert new[1:] == (later, later)
    assert old[1:] == (AS_OF, AS_OF)  # carried forward: nothing about it changed
    assert [e.seq for e in read_log(staged)] == [1, 2]


@local_and_moto
def test_replace_mode_withdrawal_shows_as_removed(staged: Storage, settings):
    first = publish_snapshot(staged, settings, as_of=AS_OF)
    # SH's next complete list drops SH-3 (and marks SH-2 traceable).
    stage_batch(
        staged, "merchants", "SH", "20261201T000000Z-sh9",
        [merchant(filing_id="SH-1"),
         merchant(filing_id="SH-2", uscc=uscc("31", 2), merchant_name="外滩红酒行",
                  merchant_name_key="外滩红酒行")],
        mode="replace",
    )
    second = publish_snapshot(staged, settings, as_of=AS_OF)
    changes = open_snapshot(staged).changes.collect()
    by_code = {r["uscc"]: r for r in changes.to_dicts()}
    removed = by_code[uscc("31", 3)]
    assert removed["change"] == "removed" and removed["grade_after"] is None
    assert removed["score_before"] is not None and removed["trusted_after"] is None
    updated = by_code[uscc("31", 2)]
    assert updated["change"] == "updated"
    assert "traceable" in updated["fields_changed"] and "score" in updated["fields_changed"]
    assert updated["score_after"] - updated["score_before"] == 10.0
    assert second.changes == {"removed": 1, "updated": 1}
    assert first.snapshot_id != second.snapshot_id


def test_same_inputs_and_as_of_give_byte_identical_data_files(tmp_path, settings):
    stores = [LocalStorage(tmp_path / name) for name in ("a", "b")]
    results = []
    for store in stores:
        stage_three_regions(store)
        results.append(publish_snapshot(store, settings, as_of=AS_OF))
    files = [
        json.loads(s.read_bytes(manifest_key(r.snapshot_id)))["files"]
        for s, r in zip(stores, results, strict=True)
    ]
    assert files[0] == files[1]
    for name in ("merchants", "products", "changes", "complaints_summary"):
        a, b = (s.read_bytes(f"{SNAPSHOTS_PREFIX}{r.snapshot_id}/{name}.parquet")
                for s, r in zip(stores, results, strict=True))
        assert a == b


@local_and_moto
def test_a_held_batch_counts_only_once_released(storage: Storage, settings):
    stage_batch(storage, "merchants", "JS", "B1", [merchant(region="JS", city="南京")])
    stage_batch(storage, "merchants", "JS", "B2",
                [merchant(region="JS", filing_id="F9", uscc=uscc("32", 9), city="南京")],
                status="held")
    assert publish_snapshot(storage, settings, as_of=AS_OF).rows["merchants"] == 1
    ledger.write_release(storage, ledger.Release(
        batch_id="B2", dataset="merchants", region="JS", released_by="engineer-li",
        released_at=datetime(2026, 11, 30, tzinfo=UTC), reason="checked"))
    result = publish_snapshot(storage, settings, as_of=AS_OF)
    assert result.rows["merchants"] == 2 and result.changes == {"added": 1}
    assert "B2" in json.loads(storage.read_bytes(result.manifest_key))["input_batches"]


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("联系电话13912345678", "mobile_number"),
        ("+86 139-1234-5678", "mobile_number"),
        ("法人 11010519491231002X", "resident_id"),
    ],
)
def test_personal_data_in_the_output_refuses_publication(storage: Storage, settings, value,
                                                         kind):
    stage_batch(storage, "merchants", "SH", "B1",
                [merchant(merchant_name=f"上海商行{value}")])
    with pytest.raises(PIIRefused) as refused:
        publish_snapshot(storage, settings, as_of=AS_OF)
    assert refused.value.findings[0].kind == kind
    assert refused.value.findings[0].column == "name"
    digits = "".join(ch for ch in value if ch.isdigit())
    assert digits not in str(refused.value)  # the refusal itself does not leak the number
    assert read_latest(storage) is None and snapshot_folders(storage) == set()


def test_pii_guard_flags_contract_pii_columns_and_ignores_ordinary_numbers():
    frame = pl.DataFrame(
        {
            "uscc": ["91310000MA1FL8LQ3X"],
            "contact_phone": ["021-12345678"],
            "name": ["上海1391234567公司"],  # ten digits: not a mobile number
            "tags": [["2026", "13912345678"]],
        }
    )
    found = {(f.column, f.kind) for f in pii_findings({"merchants": frame}, {"contact_phone"})}
    assert found == {("contact_phone", "pii_column"), ("tags", "mobile_number")}
    # A batch id whose hash happens to hold eleven digits is lineage, not a phone number.
    lineage = pl.DataFrame({"source_batches": [["20261130T072716992234Z-a13912345678"]]})
    assert pii_findings({"merchants": lineage}, set()) == []


@local_and_moto
def test_a_second_writer_loses_at_the_log_and_leaves_only_an_orphan(
    staged: Storage, settings, monkeypatch
):
    first = publish_snapshot(staged, settings, as_of=AS_OF)
    rival = json.loads(staged.read_bytes(log_key(1)))
    rival.update(seq=2, previous_snapshot=first.snapshot_id)
    put_if_absent = staged.put_if_absent

    def rival_commits_first(key: str, data: bytes) -> str:
        if key == log_key(2):
            put_if_absent(key, json.dumps(rival).encode())
        return put_if_absent(key, data)

    monkeypatch.setattr(staged, "put_if_absent", rival_commits_first)
    with pytest.raises(ConcurrentPublish, match="sequence 2"):
        publish_snapshot(staged, settings, as_of=AS_OF + timedelta(days=1))
    monkeypatch.undo()
    # The rival's entry (a re-commit of the first snapshot) is the head; latest follows it.
    assert recover_latest(staged).seq == 2
    assert verify_snapshot(staged) == []
    orphans = snapshot_folders(staged) - {first.snapshot_id}
    assert len(orphans) == 1
    report = collect_garbage(staged, settings, grace_seconds=0)
    assert report.orphans_removed == sorted(orphans)
    assert snapshot_folders(staged) == {first.snapshot_id}


# Four publications and a rollback: local storage only. On S3, the log entry and the
# compare-and-swap of latest they rely on are those of test_whole_publication_path.
@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_rollback_is_a_new_log_entry_and_the_next_publish_builds_on_it(staged, settings):
    first = publish_snapshot(staged, settings, as_of=AS_OF)
    second = publish_snapshot(staged, settings, as_of=AS_OF + timedelta(days=1))
    entry = rollback_snapshot(staged, first.snapshot_id, reason="bad upload")
    assert (entry.seq, entry.action, entry.previous_snapshot) == (
        3, "rollback", second.snapshot_id,
    )
    assert open_snapshot(staged).snapshot_id == first.snapshot_id
    # Opening by as_of skips the withdrawn snapshot.
    assert open_snapshot(staged, as_of=date(2027, 1, 1)).snapshot_id == first.snapshot_id
    third = publish_snapshot(staged, settings, as_of=AS_OF + timedelta(days=2))
    assert third.seq == 4 and third.previous_snapshot == first.snapshot_id
    with pytest.raises(ValueError, match="already latest"):
        rollback_snapshot(staged, third.snapshot_id)
    with pytest.raises(ValueError, match="never committed"):
        rollback_snapshot(staged, "20990101T000000Z-deadbeef")


# Five publications: on local storage only. gc's S3 calls (list, delete) are those of
# test_gc_leaves_young_orphans_alone, which runs on moto too.
@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_gc_keeps_the_retention_count_and_always_latest_and_its_predecessor(staged, settings):
    ids = [publish_snapshot(staged, settings, as_of=AS_OF + timedelta(days=i)).snapshot_id
           for i in range(5)]
    rollback_snapshot(staged, ids[1])  # latest is now ids[1]; its predecessor is ids[0]
    tight = settings.model_copy(update={"snapshot_retention": 2})
    report = collect_garbage(staged, tight, grace_seconds=3600)
    assert report.expired_removed == [ids[2]]
    assert snapshot_folders(staged) == {ids[0], ids[1], ids[3], ids[4]}
    assert verify_snapshot(staged) == []
    # A committed snapshot that gc removed is listed but can no longer be opened.
    from registry.snapshot.reader import SnapshotError, list_snapshots

    gone = [s for s in list_snapshots(staged) if s.snapshot_id == ids[2]]
    assert gone and gone[0].present is False
    with pytest.raises(SnapshotError):
        open_snapshot(staged, ids[2])


@local_and_moto
def test_gc_leaves_young_orphans_alone(staged: Storage, settings):
    publish_snapshot(staged, settings, as_of=AS_OF)
    staged.put_if_absent(f"{SNAPSHOTS_PREFIX}20991231T000000Z-inflight/merchants.parquet", b"x")
    assert collect_garbage(staged, settings, grace_seconds=3600).orphans_removed == []
    report = collect_garbage(staged, settings, grace_seconds=0)
    assert report.orphans_removed == ["20991231T000000Z-inflight"]


# Three publications of the same data: local storage only, for the reason above.
@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_republishing_unchanged_data_is_a_new_snapshot_with_no_changes(staged, settings):
    results = [publish_snapshot(staged, settings, as_of=AS_OF) for _ in range(3)]
    assert [r.seq for r in results] == [1, 2, 3]
    assert len({r.snapshot_id for r in results}) == 3
    assert results[2].changes == {} and results[2].rows["changes"] == 0
    files = [json.loads(staged.read_bytes(r.manifest_key))["files"] for r in results[1:]]
    assert files[0] == files[1]  # identical data, distinct snapshots


def test_snapshot_ids_sort_after_the_previous_even_if_the_clock_steps_back():
    from datetime import UTC, datetime

    from registry.publish.protocol import _snapshot_id

    now = datetime(2026, 11, 30, 2, 0, 0, 500, tzinfo=UTC)
    first = _snapshot_id(now, None, [], AS_OF, 1)
    assert first.startswith("20261130T020000000500Z-")
    second = _snapshot_id(now.replace(second=0, microsecond=0), first, [], AS_OF, 2)
    assert second.startswith("20261130T020000000501Z-") and second > first


@local_and_moto
def test_a_publication_reads_the_previous_snapshot_through_once(staged: Storage, settings):
    """The build verifies the previous snapshot, and the report reads the same opened
    snapshot for the removed merchants' names; the new snapshot's files are the bytes the
    publication hashed as it stored them, not read back to be hashed again."""
    first = publish_snapshot(staged, settings, as_of=AS_OF)
    counting = CountingReads(staged)
    second = publish_snapshot(counting, settings, as_of=AS_OF + timedelta(days=1))
    assert second.report is not None
    files = [entry.path for entry in open_snapshot(staged, verify=False).manifest.files]
    assert dict(counting.digests) == {
        f"{SNAPSHOTS_PREFIX}{first.snapshot_id}/{path}": 1
        for path in [*files, *(c.path for c in open_snapshot(
            staged, first.snapshot_id, verify=False).manifest.data_contracts)]}
