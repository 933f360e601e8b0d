"""Every snapshot carries the data contracts of its tables, and its Parquet fields carry the
contracts' descriptions (docs/architecture.md §11.1): an app reads the meanings a snapshot was
published with, from the snapshot itself."""

from __future__ import annotations

import io
import json

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry.config.published import load_published_contracts
from registry.publish import publish_snapshot
from registry.publish.tables import (
    CONTRACT_METADATA_KEY,
    ROW_GROUP_ROWS,
    TABLE_ORDER,
    ContractMismatch,
    TableWriter,
    parquet_bytes,
)
from registry.snapshot.formats import SnapshotError
from registry.snapshot.reader import open_snapshot, verify_snapshot
from registry.storage.layout import manifest_key, snapshot_prefix

pytestmark = pytest.mark.backends("local")

CONTRACTS = load_published_contracts()


def test_a_snapshot_carries_each_tables_contract_and_its_descriptions(staged, settings):
    result = publish_snapshot(staged, settings)
    snap = open_snapshot(staged)
    manifest = json.loads(staged.read_bytes(manifest_key(result.snapshot_id)))
    assert manifest["format"] == "yrd-registry-snapshot/2"
    listed = {e["table"]: e for e in manifest["data_contracts"]}
    assert sorted(listed) == sorted(TABLE_ORDER)
    for table in TABLE_ORDER:
        contract = CONTRACTS[table]
        assert snap.contract(table).encode() == contract.raw
        assert listed[table]["version"] == contract.version
        assert manifest["output_contract_versions"][table] == contract.major
        data = staged.read_bytes(snap.key(table))
        schema = pq.read_schema(pa.BufferReader(data))
        assert schema.names == list(contract.column_names)
        for column in contract.columns:
            meta = schema.field(column.name).metadata
            assert meta[b"description"].decode() == column.description_en
            assert meta[b"description_zh"].decode() == column.description_zh
        file_meta = pq.ParquetFile(pa.BufferReader(data)).metadata.metadata
        assert file_meta[CONTRACT_METADATA_KEY.encode()].decode() == (
            f"{table} {contract.version}")
        # polars reads the same types the contract declares.
        assert dict(pl.read_parquet(io.BytesIO(data)).schema) == contract.schema


def test_a_tampered_contract_copy_fails_and_an_older_snapshot_still_opens(staged, settings):
    """A contract copy is verified like a data file. A format-1 manifest (written before
    snapshots carried contracts) still opens; asking it for a contract says why there is
    none."""
    result = publish_snapshot(staged, settings)
    key = snapshot_prefix(result.snapshot_id) + "contracts/merchants.odcs.yaml"
    original = staged.read_bytes(key)
    staged.write_bytes(key, original.replace(b"1.1.0", b"9.9.9"))
    assert any("contracts/merchants.odcs.yaml" in p for p in verify_snapshot(staged))
    staged.write_bytes(key, original)

    older = json.loads(staged.read_bytes(manifest_key(result.snapshot_id)))
    older["format"] = "yrd-registry-snapshot/1"
    del older["data_contracts"]
    staged.write_bytes(manifest_key(result.snapshot_id), json.dumps(older).encode())
    snap = open_snapshot(staged, result.snapshot_id)
    assert snap.merchants.collect().height > 0
    with pytest.raises(SnapshotError, match="published before snapshots carried them"):
        snap.contract("merchants")


def test_a_table_that_differs_from_its_contract_is_never_written():
    contract = CONTRACTS["changes"]
    frame = pl.DataFrame(schema=contract.schema)
    assert parquet_bytes(frame, contract)
    with pytest.raises(ContractMismatch, match="changes"):
        parquet_bytes(frame.drop("grade_after"), contract)
    with pytest.raises(ContractMismatch):
        parquet_bytes(frame.with_columns(pl.col("score_after").cast(pl.Int64)), contract)


def test_a_table_written_part_by_part_is_the_same_file_as_written_whole(tmp_path):
    """Row groups are cut from the rows, not from the parts: 80,000 changes written in parts of
    uneven sizes give the bytes of one write, in row groups of ROW_GROUP_ROWS."""
    contract = CONTRACTS["changes"]
    n = 80_000
    frame = pl.DataFrame({
        "uscc": [f"91{i:016d}" for i in range(n)],
        "change": ["updated" if i % 3 else "added" for i in range(n)],
        "fields_changed": [["score"] if i % 3 else [] for i in range(n)],
        "grade_before": [None if i % 3 == 0 else "B" for i in range(n)],
        "grade_after": ["A" if i % 2 else "B" for i in range(n)],
        "score_before": [None if i % 3 == 0 else 70.0 + i % 7 for i in range(n)],
        "score_after": [80.0 + i % 11 for i in range(n)],
        "trusted_before": [None if i % 3 == 0 else False for i in range(n)],
        "trusted_after": [i % 2 == 1 for i in range(n)],
    }, schema=contract.schema)
    path = tmp_path / "changes.parquet"
    writer = TableWriter(path, contract)
    for start, length in ((0, 1), (1, 40_000), (40_001, 0), (40_001, 25_000), (65_001, 14_999)):
        writer.write(frame.slice(start, length))
    writer.close()
    written = writer.written(part_rows=10_000)
    assert path.read_bytes() == parquet_bytes(frame, contract)
    assert written.rows == n and written.bytes == path.stat().st_size
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [
        ROW_GROUP_ROWS, ROW_GROUP_ROWS, n - 2 * ROW_GROUP_ROWS]
    parts = list(written)
    assert pl.concat(parts).equals(frame) and max(p.height for p in parts) <= ROW_GROUP_ROWS
