"""Tiny staged frames and batch records, written the way ingestion writes them (the contract in
docs/architecture.md §3-4), so that build and publication tests do not depend on the ingest code."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from registry import ledger
from registry.build.columns import ORDER_COLUMN, STAGED_COLUMNS, StagedInputs
from registry.config.settings import PROJECT_ROOT, Settings
from registry.ledger import BatchRecord
from registry.storage import Storage
from registry.storage.layout import quarantine_prefix, staged_prefix

AS_OF = date(2026, 11, 30)

# Staged data carries PII; the registry must never publish it.
_PII = {
    "merchants": {"contact_name": pl.String, "contact_phone": pl.String},
    "complaints": {"consumer_name": pl.String, "consumer_phone": pl.String},
}
_EXTRA = {
    "merchants": {"store_name": pl.String, "city": pl.String, "district": pl.String,
                  "address": pl.String},
    "complaints": {"category": pl.String, "resolved_on": pl.Date,
                   "recovered_amount_cny": pl.Float64},
    "inspections": {"product_name": pl.String, "defect_items": pl.String},
}


def uscc(division: str, n: int) -> str:
    """An 18-character code whose positions 3-4 name the province (31 SH ... 34 AH)."""
    return f"91{division}0000MA{n:08d}"


def merchant(**overrides: Any) -> dict[str, Any]:
    row = {
        "region": "SH",
        "filing_id": "F1",
        "uscc": uscc("31", 1),
        "merchant_name": "上海进口商品有限公司",
        "merchant_name_key": "上海进口商品有限公司",
        "program": "imported_goods",
        "categories": ["food"],
        "origin_countries": ["FR"],
        "chinese_label": True,
        "traceable": True,
        "no_reason_return_7d": True,
        "offline_no_reason_return": True,
        "advance_compensation": True,
        "valid_from": date(2025, 1, 1),
        "valid_until": date(2027, 12, 31),
        "status": "active",
        "contact_name": "张三",
        "contact_phone": "13912345678",
        "store_name": None,
        "city": "上海",
        "district": None,
        "address": None,
    }
    row.update(overrides)
    return row


def complaint(**overrides: Any) -> dict[str, Any]:
    row = {
        "region": "SH",
        "complaint_id": "C1",
        "uscc": uscc("31", 1),
        "received_on": date(2026, 6, 1),
        "status": "resolved",
        "consumer_name": "李四",
        "consumer_phone": "13800001111",
        "category": "quality",
        "resolved_on": None,
        "recovered_amount_cny": 0.0,
    }
    row.update(overrides)
    return row


def inspection(**overrides: Any) -> dict[str, Any]:
    row = {
        "region": "SH",
        "inspection_id": "I1",
        "uscc": uscc("31", 1),
        "tested_on": date(2026, 6, 1),
        "result": "pass",
        "severity": None,
        "product_name": "红酒",
        "defect_items": None,
    }
    row.update(overrides)
    return row


def evaluation(**overrides: Any) -> dict[str, Any]:
    row = {
        "region": "ZJ",
        "product_id": "P1",
        "uscc": uscc("33", 1),
        "product_name": "龙井茶礼盒",
        "origin_city": "杭州",
        "category": "tea",
        "evaluation_round": "2026",
        "evaluator_id": "E1",
        "quality": 8.0,
        "culture": 8.0,
        "packaging": 8.0,
        "value": 8.0,
    }
    row.update(overrides)
    return row


def staged_frame(dataset: str, rows: list[dict[str, Any]], batch_id: str = "B0001") -> pl.DataFrame:
    """Rows typed as staged Parquet, with lineage columns (and PII where the contract has it)."""
    schema = {
        **{k: v for k, v in STAGED_COLUMNS[dataset].items() if not k.startswith("_")},
        **_EXTRA.get(dataset, {}),
        **_PII.get(dataset, {}),
    }
    frame = pl.DataFrame(
        [{name: row.get(name) for name in schema} for row in rows], schema=schema, orient="row"
    )
    return frame.with_columns(
        pl.lit(f"landing/x/{dataset}/upload.csv").alias("_source_key"),
        pl.lit("0" * 64).alias("_sha256"),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("_source_row"),
        pl.lit(batch_id).alias("_batch_id"),
        pl.lit(datetime(2026, 11, 29, tzinfo=UTC)).cast(pl.Datetime("us", "UTC"))
        .alias("_ingested_at"),
    )


def inputs_of(**datasets: list[dict[str, Any]] | pl.DataFrame) -> StagedInputs:
    """StagedInputs from lists of rows (one batch each) or ready frames; missing = empty. The
    ledger order of a frame's batches is the order of their ids."""
    frames = {}
    for dataset, columns in STAGED_COLUMNS.items():
        given = datasets.get(dataset, [])
        frame = given if isinstance(given, pl.DataFrame) else staged_frame(dataset, given)
        frames[dataset] = frame.lazy().select(list(columns)).with_columns(
            pl.col("_batch_id").rank("dense").cast(pl.Int64).alias(ORDER_COLUMN))
    return StagedInputs(**frames)


_LANDED = datetime(2026, 11, 29, tzinfo=UTC)


def batch_record(batch_id: str, *, dataset: str = "merchants", region: str = "SH",
                 mode: str = "upsert", status: str = "released", rows: int = 1,
                 landed: int | None = None, sha256: str | None = None,
                 same_as: str | None = None) -> BatchRecord:
    """A committed batch's record, through the ledger's own model. ``landed`` is its upload's
    landing time in seconds after a fixed day (default: the time a batch id like ingestion's
    begins with, else the number in it, so that B1 < B2 < ... < B10); ``sha256`` defaults to
    one of its own."""
    try:
        at = datetime.strptime(batch_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        at = _LANDED + timedelta(seconds=int("".join(c for c in batch_id if c.isdigit()) or 0))
    if landed is not None:
        at = _LANDED + timedelta(seconds=landed)
    return BatchRecord(
        batch_id=batch_id, dataset=dataset, region=region, mode=mode,
        sha256=sha256 or hashlib.sha256(f"{dataset}/{region}/{batch_id}".encode()).hexdigest(),
        source_key=f"landing/{region}/{dataset}/{batch_id}.csv", landed_at=at, ingested_at=at,
        created_at=at, rows_in=rows, accepted=rows, quarantined=0, status=status,
        held_reasons=["batch_row_count"] if status == "held" else [],
        contract_version="1.0.0",
        staged_key=staged_prefix(dataset, region, same_as or batch_id) + "part-0.parquet",
        quarantine_key=quarantine_prefix(dataset, region, same_as or batch_id)
        + "part-0.parquet",
        same_as=same_as,
    )


def stage_batch(
    storage: Storage,
    dataset: str,
    region: str,
    batch_id: str,
    rows: list[dict[str, Any]],
    *,
    mode: str = "upsert",
    status: str = "released",
    released: bool = False,
    quarantined: list[dict[str, Any]] | None = None,
    landed: int | None = None,
    created_at: datetime | None = None,
) -> BatchRecord:
    """Write a batch as ingestion does: Parquet first, then the record that commits it (through
    the ledger). ``quarantined`` rows (natural-key columns are enough) go to its quarantine.
    ``created_at`` is when it was committed (default: when it landed)."""
    rows = [{**row, "region": region} for row in rows]
    frame = staged_frame(dataset, rows, batch_id)
    storage.write_parquet(frame, staged_prefix(dataset, region, batch_id) + "part-0.parquet")
    bad = pl.DataFrame([{k: None if v is None else str(v) for k, v in r.items()}
                        for r in quarantined or []]).with_columns(  # lineage, as ingestion's
        pl.lit(f"landing/x/{dataset}/upload.csv").alias("_source_key"),
        pl.lit(batch_id).alias("_batch_id"))
    storage.write_parquet(bad, quarantine_prefix(dataset, region, batch_id) + "part-0.parquet")
    record = batch_record(batch_id, dataset=dataset, region=region, mode=mode, status=status,
                          rows=len(rows), landed=landed)
    record = record.model_copy(update={"quarantined": bad.height,
                                       "rows_in": len(rows) + bad.height,
                                       "created_at": created_at or record.created_at})
    ledger.commit_batch(storage, record)
    if released:
        ledger.write_release(storage, ledger.Release(
            batch_id=batch_id, dataset=dataset, region=region, released_by="tester",
            released_at=datetime(2026, 11, 30, tzinfo=UTC), reason="ok",
        ))
    return record


def stage_three_regions(storage: Storage) -> None:
    """A small realistic world: SH (replace mode), AH and ZJ councils, four merchants."""
    stage_batch(
        storage, "merchants", "SH", "20261101T000000Z-sh1",
        [
            merchant(filing_id="SH-1"),
            merchant(filing_id="SH-2", uscc=uscc("31", 2), merchant_name="外滩红酒行",
                     merchant_name_key="外滩红酒行", traceable=False),
            merchant(filing_id="SH-3", uscc=uscc("31", 3), merchant_name="静安超市",
                     merchant_name_key="静安超市"),
        ],
        mode="replace",
    )
    stage_batch(
        storage, "merchants", "AH", "20261102T000000Z-ah1",
        [merchant(filing_id="AH-1", status="revoked", city="合肥")],
    )
    stage_batch(
        storage, "merchants", "ZJ", "20261103T000000Z-zj1",
        [merchant(filing_id="ZJ-1", uscc=uscc("33", 1), program="specialty_gift",
                  merchant_name="西湖伴手礼", merchant_name_key="西湖伴手礼", city="杭州")],
    )
    stage_batch(
        storage, "complaints", "SH", "20261104T000000Z-sh2",
        [complaint(complaint_id="C1", uscc=uscc("31", 2), status="unresolved")],
    )
    stage_batch(
        storage, "inspections", "ZJ", "20261105T000000Z-zj2",
        [inspection(inspection_id="I1", uscc=uscc("31", 3), result="fail", severity="minor")],
    )
    stage_batch(
        storage, "gift_evaluations", "ZJ", "20261106T000000Z-zj3",
        [evaluation(evaluator_id=f"E{i}", quality=float(5 + i)) for i in range(5)],
    )


# Fixtures shared by the publish and reader tests (imported into their conftest.py).


@pytest.fixture
def settings() -> Settings:
    """The project's own config (regions, score model) and contracts."""
    return Settings(_env_file=None, schemas_dir=PROJECT_ROOT / "schemas")


@pytest.fixture
def staged(storage: Storage) -> Storage:
    stage_three_regions(storage)
    return storage
