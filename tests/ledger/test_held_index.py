"""The ledger's questions of every run and every upload, without reading a year of batch records:
which batches are held (every run's summary), and a stream's latest batch before an upload
(its duplicate check and its batch gate). Each must cost what it is about, not what was ever
committed (docs/architecture.md §5)."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from counted_reads import CountingReads
from hypothesis import given, settings
from hypothesis import strategies as st
from staged_rows import batch_record

from registry import ledger
from registry.storage import LocalStorage, Storage, layout


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


# --- an upload's question: the stream's latest batch before it --------------------------------


def _stream_record(second: int, n: int, **fields: Any) -> ledger.BatchRecord:
    """A batch of SH merchants landed ``second`` seconds after a fixed time, its id spelled as
    ingest spells it, ``n`` telling apart uploads of the same second."""
    landed = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=second)
    sha = f"{second:06d}{n:06d}".ljust(64, "0")
    return batch_record(ledger.batch_id_for(landed, sha)).model_copy(update={
        "landed_at": landed, "sha256": sha, "source_key": f"landing/SH/merchants/{n}.csv",
        **fields})


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 3), st.sampled_from(
    ["released", "held", "released-replace"])), min_size=1, max_size=25),
    st.integers(0, 32), st.integers(0, 3))
@settings(max_examples=60, deadline=None)
def test_the_latest_batch_before_an_upload_is_found_from_the_latest_seconds(
        batches, at_second, at_n):
    storage = LocalStorage(Path(tempfile.mkdtemp(prefix="ledger-")) / "root")
    records = {}
    for second, n, kind in batches:
        record = _stream_record(second, n, status="held" if kind == "held" else "released",
                                mode="replace" if kind == "released-replace" else "upsert")
        records[record.batch_id] = ledger.commit_batch(storage, record)
    order = _stream_record(at_second, at_n).order
    every = list(records.values())
    assert ledger.latest_batch_before(storage, "merchants", "SH", order) == ledger.latest_before(
        every, order)
    def replace(r: ledger.BatchRecord) -> bool:
        return r.mode == "replace"
    assert ledger.latest_batch_before(storage, "merchants", "SH", order, counts=replace) == (
        ledger.latest_before([r for r in every if replace(r)], order))


def test_an_uploads_latest_batch_reads_the_last_second_not_the_history(storage):
    for second in range(40):
        ledger.commit_batch(storage, _stream_record(60 * second, 0))
    counting = CountingReads(storage)
    found = ledger.latest_batch_before(counting, "merchants", "SH",  # type: ignore[arg-type]
                                       _stream_record(60 * 40, 1).order)
    assert found is not None and found.landed_at == _stream_record(60 * 39, 0).landed_at
    assert counting.record_reads == 1
