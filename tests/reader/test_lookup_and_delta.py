"""Point lookups (``snap.merchant``) and catch-up deltas (``snap.changes_since``): one net delta
over any number of missed snapshots, the same function the publisher writes each snapshot's
changes with."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyarrow.parquet as pq  # the test reads row-group statistics; the reader never does
import pytest
from staged_rows import AS_OF, merchant, stage_batch, uscc

from registry.config.published import load_published_contracts
from registry.publish import collect_garbage, publish_snapshot
from registry.publish.tables import ROW_GROUP_ROWS, parquet_bytes
from registry.snapshot.delta import CHANGE_COLUMNS
from registry.snapshot.reader import SnapshotError, open_snapshot
from registry.storage import Storage

# The reader's storage calls are those of open_snapshot, which test_reader.py runs on S3 too.
pytestmark = pytest.mark.backends("local")

DAY2, DAY3 = AS_OF + timedelta(days=1), AS_OF + timedelta(days=2)
# The world of staged_rows.stage_three_regions, then two more SH lists (SH replaces its list):
ADDED_THEN_REMOVED = uscc("31", 4)
UPDATED_TWICE = uscc("31", 2)
SH_LIST = [
    merchant(filing_id="SH-1"),
    merchant(filing_id="SH-2", uscc=UPDATED_TWICE, merchant_name="外滩红酒行",
             merchant_name_key="外滩红酒行", traceable=False),
    merchant(filing_id="SH-3", uscc=uscc("31", 3), merchant_name="静安超市",
             merchant_name_key="静安超市"),
]


def _three_publishes(storage: Storage, settings):
    """S1 as staged; S2 adds a merchant and makes another traceable; S3 drops the added one
    and renames the other."""
    first = publish_snapshot(storage, settings, as_of=AS_OF)
    second_list = [SH_LIST[0], {**SH_LIST[1], "traceable": True}, SH_LIST[2],
                   merchant(filing_id="SH-4", uscc=ADDED_THEN_REMOVED, merchant_name="新开商行",
                            merchant_name_key="新开商行")]
    stage_batch(storage, "merchants", "SH", "20261201T000000Z-sh4", second_list, mode="replace")
    second = publish_snapshot(storage, settings, as_of=DAY2)
    third_list = [SH_LIST[0], {**second_list[1], "merchant_name": "外滩红酒行（新）",
                               "merchant_name_key": "外滩红酒行（新）"}, SH_LIST[2]]
    stage_batch(storage, "merchants", "SH", "20261202T000000Z-sh5", third_list, mode="replace")
    third = publish_snapshot(storage, settings, as_of=DAY3)
    return first, second, third


def _composed(first: pl.DataFrame, second: pl.DataFrame) -> dict[str, dict]:
    """Two consecutive deltas composed by hand: what a consumer that applied both has seen."""
    a = {r["uscc"]: r for r in first.to_dicts()}
    b = {r["uscc"]: r for r in second.to_dicts()}
    out = {}
    for code in sorted(a.keys() | b.keys()):
        one, two = a.get(code), b.get(code)
        if one is None or two is None:
            out[code] = one or two
            continue
        kinds = (one["change"], two["change"])
        if kinds == ("added", "removed"):
            continue  # never seen by a consumer that skipped the middle snapshot
        change = {("added", "updated"): "added", ("updated", "removed"): "removed"}.get(
            kinds, "updated")
        fields = [] if change != "updated" else sorted(
            set(one["fields_changed"]) | set(two["fields_changed"]))
        out[code] = {**two, "change": change, "fields_changed": fields,
                     **{k: one[k] for k in ("grade_before", "score_before", "trusted_before")}}
    return out


def _by_uscc(delta: pl.DataFrame) -> dict[str, dict]:
    return {r["uscc"]: {**r, "fields_changed": sorted(r["fields_changed"])}
            for r in delta.to_dicts()}


def test_a_delta_over_missed_snapshots_is_their_composition(staged: Storage, settings):
    first, second, third = _three_publishes(staged, settings)
    latest = open_snapshot(staged)
    assert latest.snapshot_id == third.snapshot_id
    delta = latest.changes_since(first.snapshot_id)
    assert tuple(delta.columns) == CHANGE_COLUMNS
    assert delta.get_column("uscc").is_sorted()

    step2 = open_snapshot(staged, second.snapshot_id).changes.collect()
    step3 = latest.changes.collect()
    # The steps did what the test means them to.
    assert {r["uscc"]: r["change"] for r in step2.to_dicts()}[ADDED_THEN_REMOVED] == "added"
    assert {r["uscc"]: r["change"] for r in step3.to_dicts()}[ADDED_THEN_REMOVED] == "removed"
    assert _by_uscc(delta) == _composed(step2, step3)
    assert ADDED_THEN_REMOVED not in delta.get_column("uscc").to_list()
    updated = _by_uscc(delta)[UPDATED_TWICE]
    assert updated["change"] == "updated"
    assert {"traceable", "name"} <= set(updated["fields_changed"])

    # By as_of: the snapshot in effect then. The last step is exactly what the publisher wrote.
    assert latest.changes_since(AS_OF).equals(delta)
    assert latest.changes_since(datetime(2026, 12, 1, 8, tzinfo=UTC)).equals(step3)
    assert latest.changes_since(second.snapshot_id).equals(step3)
    # Since itself: nothing changed.
    unchanged = latest.changes_since(third.snapshot_id)
    assert unchanged.is_empty() and tuple(unchanged.columns) == CHANGE_COLUMNS


def test_changes_since_refuses_what_it_cannot_answer(staged: Storage, settings):
    first, second, third = _three_publishes(staged, settings)
    with pytest.raises(SnapshotError, match="unknown snapshot 20990101T000000000000Z-00000000"):
        open_snapshot(staged).changes_since("20990101T000000000000Z-00000000")
    with pytest.raises(SnapshotError, match="no published snapshot has as_of on or before"):
        open_snapshot(staged).changes_since(date(2020, 1, 1))
    with pytest.raises(SnapshotError, match=f"{third.snapshot_id} is later than "
                                            f"{second.snapshot_id}"):
        open_snapshot(staged, second.snapshot_id).changes_since(third.snapshot_id)
    # gc keeps the newest committed snapshot (and latest's predecessor): the first goes.
    gc_settings = settings.model_copy(update={"snapshot_retention": 1})
    assert first.snapshot_id in collect_garbage(staged, gc_settings, grace_seconds=0
                                                ).expired_removed
    for since in (first.snapshot_id, AS_OF):
        with pytest.raises(SnapshotError, match=f"{first.snapshot_id} was removed by gc"):
            open_snapshot(staged).changes_since(since)
    assert open_snapshot(staged).changes_since(second.snapshot_id).height == 2


def test_a_lookup_returns_the_row_or_none(staged: Storage, settings):
    publish_snapshot(staged, settings, as_of=AS_OF)
    snap = open_snapshot(staged)
    row = snap.merchant(uscc("31", 2))
    assert row is not None and row["uscc"] == uscc("31", 2)
    assert set(row) == set(snap.merchants.collect_schema().names())
    assert row["verdict"] in ("trusted", "listed", "disqualified")
    assert row == snap.merchants.filter(pl.col("uscc") == uscc("31", 2)).collect().to_dicts()[0]
    # As a person types it: lower case, full-width digits, spaces around.
    full_width = str.maketrans("0123456789", "０１２３４５６７８９")
    typed = " " + uscc("31", 2).lower().translate(full_width)
    assert snap.merchant(typed) == row
    assert snap.merchant(uscc("31", 9)) is None


def _merchants_like(rows: int) -> pl.DataFrame:
    """A merchants table of the contract's schema, ``rows`` distinct USCCs in order."""
    schema = load_published_contracts()["merchants"].schema
    sample = {pl.String: "x", pl.Boolean: True, pl.Date: AS_OF, pl.Int64: 0, pl.Float64: 1.0}
    columns = {name: pl.repeat(["SH"] if dtype == pl.List(pl.String) else sample[dtype.base_type()],
                               rows, dtype=dtype, eager=True)
               for name, dtype in schema.items() if name != "uscc"}
    codes = pl.Series("uscc", [f"91310000MA{n:08d}" for n in range(rows)])
    return pl.DataFrame({"uscc": codes, **columns}).select(list(schema))


def test_the_published_layout_prunes_a_lookup_to_one_row_group():
    contract = load_published_contracts()["merchants"]
    frame = _merchants_like(10 * ROW_GROUP_ROWS + 123)
    meta = pq.ParquetFile(io.BytesIO(parquet_bytes(frame, contract))).metadata
    assert meta.num_row_groups == 11
    column = contract.column_names.index("uscc")
    ranges = []
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(column).statistics
        assert stats is not None and stats.has_min_max
        ranges.append((stats.min, stats.max))
    # Sorted by USCC, so the groups' ranges are ascending and apart.
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges))
    codes = frame.get_column("uscc")
    for code in (codes[0], codes[ROW_GROUP_ROWS - 1], codes[ROW_GROUP_ROWS], codes[-1],
                 codes[5 * ROW_GROUP_ROWS + 77], "91310000MA99999999"):
        holding = [i for i, (low, high) in enumerate(ranges) if low <= code <= high]
        assert len(holding) <= 2, (code, holding)
        assert len(holding) == (0 if code == "91310000MA99999999" else 1)


def test_the_publisher_writes_merchants_sorted_with_statistics(staged: Storage, settings):
    publish_snapshot(staged, settings, as_of=AS_OF)
    snap = open_snapshot(staged)
    merchants = snap.merchants.collect()
    assert merchants.get_column("uscc").is_sorted()
    meta = pq.ParquetFile(io.BytesIO(staged.read_bytes(snap.key("merchants")))).metadata
    stats = meta.row_group(0).column(merchants.columns.index("uscc")).statistics
    assert (stats.min, stats.max) == (merchants["uscc"].min(), merchants["uscc"].max())
