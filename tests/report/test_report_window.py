"""The report's data-quality cards show the uploads a snapshot took in since the previous one,
and every batch the gate holds; computing them reads those records, not the ledger's history
(docs/architecture.md §12)."""

from __future__ import annotations

from council_world import CouncilWorld, filing, merchant_code
from counted_reads import CountingReads

from registry import ledger
from registry.quality import release_batch
from registry.report import report_data


def _cards(world: CouncilWorld, storage=None) -> dict[str, dict]:
    data = report_data(storage or world.storage, world.settings)
    return {card["code"]: card for card in data.scorecards}


def test_each_reports_cards_count_the_uploads_since_the_previous_snapshot(tmp_path):
    w = CouncilWorld(tmp_path)
    codes = [merchant_code("SH", n) for n in range(1, 5)]
    w.upload("SH", "merchants", [filing("SH", f"SH-{n}", c) for n, c in enumerate(codes, 1)])
    w.ingest()
    # Shanghai's next complete list has three of four filings suspended: the gate holds it.
    w.upload("SH", "merchants", [filing("SH", f"SH-{n}", c, Status="suspended" if n > 1
                                        else "active") for n, c in enumerate(codes, 1)])
    w.ingest()
    w.publish()
    first = _cards(w)
    assert (first["SH"]["batches"], first["SH"]["rows_in"]) == (2, 8)
    assert [h["dataset"] for h in first["SH"]["held"]] == ["merchants"]

    for n in range(4, 30):  # the ledger's history grows
        w.upload("JS", "merchants", [filing("JS", f"JS-{n}", merchant_code("JS", n))])
        w.ingest()
    w.publish()
    w.upload("AH", "merchants", [filing("AH", "AH-1", merchant_code("AH", 1)),
                                 filing("AH", "AH-2", merchant_code("AH", 2))])
    w.ingest()
    w.publish()
    counting = CountingReads(w.storage)
    last = _cards(w, counting)
    assert (last["AH"]["batches"], last["AH"]["rows_in"]) == (1, 2)
    # Shanghai and Jiangsu sent nothing since the previous snapshot: their cards say so.
    assert (last["SH"]["batches"], last["JS"]["batches"]) == (0, 0)
    # Shanghai's list is still held, and still shown.
    assert [h["dataset"] for h in last["SH"]["held"]] == ["merchants"]
    # AH's batch and the held one: not the 28 batches committed before.
    assert counting.record_reads == 2

    # An engineer releases Shanghai's held list and Shanghai sends its next one: the next
    # report lists nothing held (the released list is not in effect any more, yet it is not
    # held either). The report of the snapshot before, rebuilt now, still shows it held then.
    before = w.publish().snapshot_id
    (held,) = ledger.held_batches(w.storage)
    release_batch(w.storage, held.batch_id, reason="checked with the council", by="ops")
    w.upload("SH", "merchants", [filing("SH", f"SH-{n}", c) for n, c in enumerate(codes, 1)])
    w.ingest()
    w.publish()
    assert _cards(w)["SH"]["held"] == []
    then = {c["code"]: c for c in report_data(w.storage, w.settings, before).scorecards}
    assert [h["batch_id"] for h in then["SH"]["held"]] == [held.batch_id]
