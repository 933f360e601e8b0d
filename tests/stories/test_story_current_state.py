"""Stories of the current state: each publication reads what changed since the last one, and a
consumer app reads the same verdicts a rebuild from every staged batch gives.

1. Shanghai's council sends its complete list; Jiangsu's clerk then sends a one-row revocation.
   The next publication brings forward only Jiangsu's merchants, and the merchant is no
   longer listed in the snapshot.
2. A Shanghai list the gate held is released by an engineer after a later list was published.
   The released list counts from where it landed: Shanghai's merchants are rebuilt, and the
   later list's rows still win.
3. An upload that landed before one already published, ingested late, is placed by when it
   landed, not when it arrived.
4. A complaint received thirteen months ago leaves the working set: the state no longer
   holds it, staged still does, and it no longer counts against the merchant.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyarrow.parquet as pq
from staged_rows import AS_OF, complaint, merchant, settings, stage_batch, uscc

from registry import ledger
from registry.publish import publish_snapshot, unchanged_publication
from registry.publish.state import read_pointer
from registry.publish.tables import snapshot_tables
from registry.snapshot.reader import open_snapshot, read_log
from registry.storage import LocalStorage
from registry.storage.layout import staged_prefix

__all__ = ["settings"]  # the project's own config, as a fixture

SH_1, SH_2, JS_1 = uscc("31", 1), uscc("31", 2), uscc("32", 1)


def _row(storage, snapshot_id: str, code: str) -> dict | None:
    return open_snapshot(storage, snapshot_id).merchant(code)


def _same_as_full(storage, settings, as_of: date, previous: str | None, snapshot_id: str):
    rebuilt = snapshot_tables(storage, settings, as_of, previous, full=True)
    assert open_snapshot(storage, snapshot_id).merchants.collect().equals(
        rebuilt.tables["merchants"])


def _world(storage) -> None:
    stage_batch(storage, "merchants", "SH", "20261101T000000Z-sh1",
                [merchant(filing_id="SH-1"),
                 merchant(filing_id="SH-2", uscc=SH_2, merchant_name="外滩红酒行",
                          merchant_name_key="外滩红酒行")], mode="replace")
    stage_batch(storage, "merchants", "JS", "20261102T000000Z-js1",
                [merchant(filing_id="JS-1", uscc=JS_1, merchant_name="金陵商行",
                          merchant_name_key="金陵商行", city="南京")])


def test_a_one_row_revocation_brings_forward_only_its_region(tmp_path, settings):
    storage = LocalStorage(tmp_path)
    _world(storage)
    first = publish_snapshot(storage, settings, as_of=AS_OF)
    assert _row(storage, first.snapshot_id, JS_1)["trusted"] is True

    stage_batch(storage, "merchants", "JS", "20261130T020000Z-js2",
                [merchant(filing_id="JS-1", uscc=JS_1, status="revoked", city="南京")])
    built = snapshot_tables(storage, settings, AS_OF, first.snapshot_id)
    assert built.state.advanced == ("merchants/JS",) and built.state.rebuilt == ()
    second = publish_snapshot(storage, settings, as_of=AS_OF)
    assert _row(storage, second.snapshot_id, JS_1) is None  # no valid filing: not listed
    _same_as_full(storage, settings, AS_OF, first.snapshot_id, second.snapshot_id)


def test_a_held_list_released_later_counts_from_where_it_landed(tmp_path, settings):
    storage = LocalStorage(tmp_path)
    _world(storage)
    # Landed 10 Nov, held (a short list); a later full list lands 20 Nov and is published.
    stage_batch(storage, "merchants", "SH", "20261110T000000Z-sh2",
                [merchant(filing_id="SH-1", status="suspended")], mode="replace",
                status="held")
    stage_batch(storage, "merchants", "SH", "20261120T000000Z-sh3",
                [merchant(filing_id="SH-1"),
                 merchant(filing_id="SH-2", uscc=SH_2, merchant_name="外滩红酒行",
                          merchant_name_key="外滩红酒行", status="revoked")], mode="upsert")
    first = publish_snapshot(storage, settings, as_of=AS_OF)
    assert _row(storage, first.snapshot_id, SH_2) is None  # revoked: no valid filing

    ledger.write_release(storage, ledger.Release(
        batch_id="20261110T000000Z-sh2", dataset="merchants", region="SH",
        released_by="数据工程师", released_at=datetime(2026, 11, 30, tzinfo=UTC),
        reason="清单核实无误 / list checked"))
    built = snapshot_tables(storage, settings, AS_OF, first.snapshot_id)
    assert built.state.rebuilt == ("merchants/SH",)
    second = publish_snapshot(storage, settings, as_of=AS_OF)
    # The released complete list (10 Nov) withdrew SH-2; the 20 Nov upsert filed it again as
    # revoked and SH-1 as active: the later rows win.
    assert _row(storage, second.snapshot_id, SH_1)["trusted"] is True
    assert _row(storage, second.snapshot_id, SH_2) is None
    _same_as_full(storage, settings, AS_OF, first.snapshot_id, second.snapshot_id)


def test_an_upload_ingested_late_is_placed_by_when_it_landed(tmp_path, settings):
    storage = LocalStorage(tmp_path)
    _world(storage)
    stage_batch(storage, "merchants", "JS", "20261120T000000Z-js3",
                [merchant(filing_id="JS-1", uscc=JS_1, status="revoked", city="南京")])
    first = publish_snapshot(storage, settings, as_of=AS_OF)
    assert _row(storage, first.snapshot_id, JS_1) is None
    # Landed on 15 Nov (before the revocation), ingested only now: it must not undo it.
    stage_batch(storage, "merchants", "JS", "20261115T000000Z-js2",
                [merchant(filing_id="JS-1", uscc=JS_1, city="南京")])
    built = snapshot_tables(storage, settings, AS_OF, first.snapshot_id)
    assert built.state.rebuilt == ("merchants/JS",)
    second = publish_snapshot(storage, settings, as_of=AS_OF)
    assert _row(storage, second.snapshot_id, JS_1) is None
    _same_as_full(storage, settings, AS_OF, first.snapshot_id, second.snapshot_id)


def test_a_complaint_leaves_the_working_set_with_the_window(tmp_path, settings):
    storage = LocalStorage(tmp_path)
    _world(storage)
    stage_batch(storage, "complaints", "SH", "20261125T000000Z-c1",
                [complaint(complaint_id="C-old", uscc=SH_2, received_on=date(2025, 12, 15),
                           status="unresolved"),
                 complaint(complaint_id="C-new", uscc=SH_2, received_on=date(2026, 11, 1))])
    first = publish_snapshot(storage, settings, as_of=AS_OF)
    assert _row(storage, first.snapshot_id, SH_2)["complaints_12m"] == 2

    later = AS_OF + timedelta(days=60)  # 15 Dec 2025 is now outside (as_of - 365 d, as_of]
    stage_batch(storage, "complaints", "SH", "20261210T000000Z-c2",
                [complaint(complaint_id="C-3", uscc=SH_2, received_on=date(2026, 12, 5))])
    second = publish_snapshot(storage, settings, as_of=later)
    assert _row(storage, second.snapshot_id, SH_2)["complaints_12m"] == 2  # C-new and C-3
    part = next(p for p in read_pointer(storage)[0].partitions
                if (p.dataset, p.region) == ("complaints", "SH"))
    held = pl.read_parquet(storage.uri_for(part.key)).get_column("complaint_id").to_list()
    assert sorted(held) == ["C-3", "C-new"]
    # Min/max statistics, so that a build of one USCC range skips the other row groups.
    stats = pq.ParquetFile(storage.uri_for(part.key)).metadata.row_group(0).column(2).statistics
    assert stats is not None and stats.has_min_max
    staged = pl.read_parquet(storage.uri_for(
        staged_prefix("complaints", "SH", "20261125T000000Z-c1") + "part-0.parquet"))
    assert "C-old" in staged.get_column("complaint_id").to_list()  # kept for audit
    _same_as_full(storage, settings, later, first.snapshot_id, second.snapshot_id)


def test_a_run_with_nothing_new_leaves_latest_as_it_is(tmp_path, settings):
    """The 10-minute schedule runs while no council sent anything: latest stays, no snapshot is
    written; the next upload, or the next day, publishes again."""
    storage = LocalStorage(tmp_path)
    _world(storage)
    first = publish_snapshot(storage, settings, as_of=AS_OF, only_if_changed=True)
    assert first.published
    # What the pipeline asks first, reading only (and then starts no publication).
    assert unchanged_publication(storage, settings, AS_OF) == publish_snapshot(
        storage, settings, as_of=AS_OF, only_if_changed=True)
    idle = publish_snapshot(storage, settings, as_of=AS_OF, only_if_changed=True)
    assert not idle.published and idle.snapshot_id == first.snapshot_id
    assert idle.rows == first.rows and len(read_log(storage)) == 1
    assert unchanged_publication(storage, settings, AS_OF + timedelta(days=1)) is None

    stage_batch(storage, "merchants", "JS", "20261130T020000Z-js2",
                [merchant(filing_id="JS-1", uscc=JS_1, status="revoked", city="南京")])
    assert unchanged_publication(storage, settings, AS_OF) is None
    after_upload = publish_snapshot(storage, settings, as_of=AS_OF, only_if_changed=True)
    assert after_upload.published and _row(storage, after_upload.snapshot_id, JS_1) is None
    next_day = publish_snapshot(storage, settings, as_of=AS_OF + timedelta(days=1),
                                only_if_changed=True)
    assert next_day.published and len(read_log(storage)) == 3
