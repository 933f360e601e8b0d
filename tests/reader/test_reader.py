"""Reading snapshots: the reader API verifies before it returns, and any downstream library
reads the same rows."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest
from staged_rows import AS_OF

import registry
from registry.publish import publish_snapshot
from registry.snapshot import reader
from registry.snapshot.reader import (
    SnapshotError,
    SnapshotIntegrityError,
    file_problems,
    open_snapshot,
    verify_snapshot,
)
from registry.storage import LocalStorage, Storage
from registry.storage.layout import SNAPSHOTS_PREFIX

# The pipeline on local disk and S3; RGW's S3 semantics: tests/storage, tests/publish.
pytestmark = pytest.mark.backends("local", "s3")


def test_latest_by_id_and_by_as_of(staged: Storage, settings):
    first = publish_snapshot(staged, settings, as_of=AS_OF)
    second = publish_snapshot(staged, settings, as_of=AS_OF + timedelta(days=31))
    assert registry.open_snapshot(staged).snapshot_id == second.snapshot_id
    assert open_snapshot(staged, first.snapshot_id).as_of == AS_OF
    assert open_snapshot(staged, as_of=AS_OF + timedelta(days=30)).snapshot_id == (
        first.snapshot_id
    )
    assert open_snapshot(staged, as_of=date(2030, 1, 1)).snapshot_id == second.snapshot_id
    with pytest.raises(SnapshotError, match="on or before 2026-11-29"):
        open_snapshot(staged, as_of=AS_OF - timedelta(days=1))
    with pytest.raises(SnapshotError, match="no manifest"):
        open_snapshot(staged, "20990101T000000Z-00000000")
    # polars on this backend (local or S3), through the LazyFrame the reader returns.
    snap = open_snapshot(staged)
    assert snap.merchants.select(pl.len()).collect().item() == 5 - 1
    assert snap.merchants.filter(pl.col("trusted")).select("uscc").collect().height == 3


# Reading a manifest's file list; test_latest_by_id_and_by_as_of covers the same calls on S3.
@pytest.mark.parametrize("storage", ["local"], indirect=True)
def test_a_snapshot_published_before_the_complaints_summary_says_so(
    staged: Storage, settings, monkeypatch: pytest.MonkeyPatch
):
    from registry.publish import protocol

    monkeypatch.setattr(protocol, "TABLE_ORDER", ("merchants", "products", "changes"))
    older = publish_snapshot(staged, settings, as_of=AS_OF)
    monkeypatch.undo()
    snap = open_snapshot(staged, older.snapshot_id)  # it verifies: the manifest lists 3 files
    with pytest.raises(SnapshotError, match=f"snapshot {older.snapshot_id} has no table "
                                            "'complaints_summary'"):
        snap.complaints_summary  # noqa: B018
    # The next snapshot has it, whatever its predecessor lacked.
    publish_snapshot(staged, settings, as_of=AS_OF)
    assert open_snapshot(staged).complaints_summary.collect().height == 1


def test_nothing_published_yet(storage: Storage):
    with pytest.raises(SnapshotError, match="nothing has been published"):
        open_snapshot(storage)
    assert verify_snapshot(storage) == ["nothing has been published yet"]


def test_a_tampered_file_is_refused(staged: Storage, settings):
    result = publish_snapshot(staged, settings, as_of=AS_OF)
    key = f"{SNAPSHOTS_PREFIX}{result.snapshot_id}/products.parquet"
    staged.write_bytes(key, staged.read_bytes(key) + b"\0")
    with pytest.raises(SnapshotIntegrityError) as err:
        open_snapshot(staged)
    assert any("products.parquet" in p and "sha256" in p for p in err.value.problems)
    assert verify_snapshot(staged, result.snapshot_id) != []
    assert open_snapshot(staged, verify=False).snapshot_id == result.snapshot_id


@pytest.mark.parametrize("footer_in_tail", [True, False], ids=["tail", "footer-read"])
def test_row_counts_are_read_from_the_footers(
    staged: Storage, settings, monkeypatch: pytest.MonkeyPatch, footer_in_tail: bool
):
    """A manifest that miscounts a table's rows is caught: the count comes from the file's
    Parquet footer, kept from the end of the hashed stream, or read on its own when the footer
    is longer than what is kept."""
    if not footer_in_tail:
        monkeypatch.setattr(reader, "FOOTER_TAIL_BYTES", 16)
    result = publish_snapshot(staged, settings, as_of=AS_OF)
    manifest = open_snapshot(staged, verify=False).manifest
    assert file_problems(staged, manifest) == []
    miscounted = manifest.model_copy(update={"files": [
        entry.model_copy(update={"rows": entry.rows + 1}) if entry.path == "merchants.parquet"
        else entry for entry in manifest.files]})
    assert file_problems(staged, miscounted) == [
        f"merchants.parquet has {result.rows['merchants']} rows, expected "
        f"{result.rows['merchants'] + 1}"]
    staged.delete(f"{SNAPSHOTS_PREFIX}{result.snapshot_id}/changes.parquet")
    assert file_problems(staged, manifest) == ["changes.parquet is missing"]


def test_a_tampered_manifest_is_refused(staged: Storage, settings):
    result = publish_snapshot(staged, settings, as_of=AS_OF)
    staged.write_bytes(result.manifest_key, staged.read_bytes(result.manifest_key) + b" ")
    with pytest.raises(SnapshotIntegrityError, match=r"_manifest\.json sha256"):
        open_snapshot(staged)


def test_polars_pandas_pyarrow_and_duckdb_read_the_same_rows(tmp_path, settings):
    import duckdb
    import pandas as pd
    import pyarrow.dataset as ds
    from staged_rows import stage_three_regions

    storage = LocalStorage(tmp_path / "root")
    stage_three_regions(storage)
    publish_snapshot(storage, settings, as_of=AS_OF)
    snap = open_snapshot(str(tmp_path / "root"))  # a root URI works as well as a Storage
    con = duckdb.connect()
    for table in ("merchants", "products", "changes", "complaints_summary"):
        uri = snap.uri(table)
        expected = snap.manifest.file(table).rows
        counts = {
            "polars": snap.scan(table).select(pl.len()).collect().item(),
            "pandas": len(pd.read_parquet(uri)),
            "pyarrow": ds.dataset(uri, format="parquet").count_rows(),
            "duckdb": con.execute(f"SELECT count(*) FROM read_parquet('{uri}')").fetchone()[0],
        }
        assert set(counts.values()) == {expected}, (table, counts)
    # List and date columns survive the trip into pandas and DuckDB.
    frame = pd.read_parquet(snap.uri("merchants"))
    # The first merchant is filed in SH (active) and AH (revoked: a disqualifier only).
    assert list(frame.loc[0, "regions"]) == ["SH"]
    assert list(frame.loc[0, "disqualifications"]) == ["status_revoked"]
    assert con.execute(
        f"SELECT max(first_listed_on) FROM read_parquet('{snap.uri('merchants')}')"
    ).fetchone()[0] == AS_OF
