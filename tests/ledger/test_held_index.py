"""Which batches are held, without reading a year of batch records: every run's summary asks, so
the answer must cost what is held, not what was ever committed (docs/architecture.md §5)."""

from __future__ import annotations

from counted_reads import CountingReads
from staged_rows import batch_record

from registry import ledger
from registry.storage import Storage, layout


def _history(storage: Storage) -> None:
    """Forty passed batches, one held, one held and released, one duplicate of the held one."""
    for n in range(1, 41):
        ledger.commit_batch(storage, batch_record(f"B{n}"))
    ledger.commit_batch(storage, batch_record("B41", status="held"))
    ledger.commit_batch(storage, batch_record("B42", status="held"))
    ledger.write_release(storage, ledger.Release(
        batch_id="B42", dataset="merchants", region="SH", reason="checked", released_by="ops",
        released_at=batch_record("B42").landed_at))
    ledger.commit_batch(storage, batch_record("B43", status="held",
                                              sha256=batch_record("B41").sha256, same_as="B41"))


def test_held_batches_read_only_the_records_of_held_batches(storage):
    ledger.held_batches(storage)  # a store's first read indexes it (it holds nothing yet)
    _history(storage)
    counting = CountingReads(storage)
    held = ledger.held_batches(counting)  # type: ignore[arg-type]
    assert [b.batch_id for b in held] == ["B41", "B43"]
    assert counting.record_reads == 2  # B41 and B43; B42 is released, B1..B40 passed
    assert held == ledger.held_unreleased(ledger.batch_records(storage),
                                          ledger.released_ids(storage))


def test_a_store_from_before_the_held_index_is_indexed_on_its_first_read(storage):
    _history(storage)
    for info in list(storage.list(layout.HELD_PREFIX)):
        storage.delete(info.key)
    first = CountingReads(storage)
    assert [b.batch_id for b in ledger.held_batches(first)] == ["B41", "B43"]  # type: ignore[arg-type]
    assert first.record_reads >= 43
    again = CountingReads(storage)
    assert [b.batch_id for b in ledger.held_batches(again)] == ["B41", "B43"]  # type: ignore[arg-type]
    assert again.record_reads == 2


def test_a_held_mark_without_its_record_is_not_a_held_batch(storage):
    """The mark is written before the record: a worker that died between the two committed
    nothing, and the batch is not listed until a rerun commits it."""
    ledger.commit_batch(storage, batch_record("B1"))
    ledger.held_batches(storage)  # the index is complete from here on
    storage.write_bytes(layout.held_key("merchants", "SH", "B2"), b"{}")
    assert ledger.held_batches(storage) == []
    ledger.commit_batch(storage, batch_record("B2", status="held"))
    assert [b.batch_id for b in ledger.held_batches(storage)] == ["B2"]
