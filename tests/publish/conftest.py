"""Fixtures for publication tests: settings pointing at the project's config and contracts, and
a storage with staged batches from three regions."""

from __future__ import annotations

import pytest
from staged_rows import complaint, evaluation, inspection, merchant, stage_batch, uscc

from registry.settings import PROJECT_ROOT, Settings
from registry.storage import Storage

SCHEMAS = PROJECT_ROOT / "schemas"


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, schemas_dir=SCHEMAS)


def stage_three_regions(storage: Storage) -> None:
    """A small realistic world: SH (replace mode), AH and ZJ councils."""
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


@pytest.fixture
def staged(storage: Storage) -> Storage:
    stage_three_regions(storage)
    return storage
