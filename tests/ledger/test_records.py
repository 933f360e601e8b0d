"""Which batches count: the ledger's pure rules, on records built through its own model."""

from __future__ import annotations

from staged_rows import batch_record, merchant, stage_batch

from registry import ledger


def _ids(effects: list[ledger.InEffect]) -> list[tuple[str, str]]:
    return [(e.region, b.batch_id) for e in effects for b in e.batches]


def test_a_replace_batch_supersedes_earlier_batches_of_its_region_only():
    batches = [
        batch_record("B1"), batch_record("B2", mode="replace"), batch_record("B3"),
        batch_record("B4", mode="replace"), batch_record("B5"),
        batch_record("B0", region="JS"), batch_record("B6", region="JS"),
    ]
    effects = ledger.in_effect(batches)
    assert _ids(effects) == [("JS", "B0"), ("JS", "B6"), ("SH", "B4"), ("SH", "B5")]
    # What was in effect before SH's latest complete list stays at hand for its quarantined
    # filings.
    (sh,) = [e for e in effects if e.region == "SH"]
    assert sh.before is not None and [b.batch_id for b in sh.before.batches] == ["B2", "B3"]


def test_order_is_when_the_upload_landed_not_the_batch_id():
    # B9 landed first, B1 second: B1 is the latest list.
    late_id = batch_record("B9", mode="replace", landed=10)
    early_id = batch_record("B1", mode="replace", landed=20)
    (effect,) = ledger.in_effect([early_id, late_id])
    assert [b.batch_id for b in effect.batches] == ["B1"]


def test_the_same_bytes_twice_in_a_row_count_once_but_restore_after_another_list():
    a = "a" * 64
    batches = [batch_record("B1", mode="replace", sha256=a),
               batch_record("B2", mode="replace", sha256=a, same_as="B1")]
    (effect,) = ledger.in_effect(batches)
    assert [b.batch_id for b in effect.batches] == ["B1"]
    restored = [*batches, batch_record("B3", mode="replace"),
                batch_record("B4", mode="replace", sha256=a, same_as="B1")]
    (effect,) = ledger.in_effect(restored)
    assert [(b.batch_id, b.stages) for b in effect.batches] == [("B4", "B1")]


def test_held_batches_count_only_once_released_and_a_duplicate_follows_its_original():
    records = [
        batch_record("B1"), batch_record("B2", status="held"),
        batch_record("B3", status="held"),
        batch_record("B4", status="held", sha256=batch_record("B3").sha256, same_as="B3"),
    ]
    assert [b.batch_id for b in ledger.publishable(records, {"B3"})] == ["B1", "B3", "B4"]
    assert [b.batch_id for b in ledger.held_unreleased(records, {"B3"})] == ["B2"]


def test_publishable_and_held_batches_read_from_storage(storage):
    stage_batch(storage, "merchants", "SH", "B1", [merchant()])
    stage_batch(storage, "merchants", "SH", "B2", [merchant()], status="held")
    stage_batch(storage, "merchants", "SH", "B3", [merchant()], status="held", released=True)
    assert [b.batch_id for b in ledger.publishable_batches(storage)] == ["B1", "B3"]
    assert [b.batch_id for b in ledger.held_batches(storage)] == ["B2"]


def test_a_record_stored_under_another_batchs_key_is_refused(storage):
    import pytest

    from registry.storage import layout

    record = batch_record("B1")
    storage.write_bytes(layout.batch_record_key("merchants", "SH", "B2"),
                        record.model_dump_json().encode())
    with pytest.raises(ledger.LedgerError, match="describes"):
        ledger.batch_records(storage)
