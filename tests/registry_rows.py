"""Tiny published merchants tables (the ``merchants`` columns of docs/architecture.md §6), for
the registry suite's tests: one consistent trusted merchant and one listed at grade B, and the
second row changed as a test asks."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from registry.build.columns import MERCHANT_COLUMNS

TODAY = date(2026, 11, 30)


def registry_merchants(uscc: str = "91310000MA00000001", **changes: Any) -> pl.DataFrame:
    """Two merchants: ``91310000MA00000002`` at grade B, then ``uscc`` (trusted at grade A)
    with ``changes``."""
    row = {
        "uscc": uscc, "name": "上海进口商品有限公司",
        "name_variants": ["上海进口商品有限公司"], "name_conflict": False, "regions": ["SH"],
        "registered_region": "SH", "programs": ["imported_goods"], "categories": ["food"],
        "origin_countries": ["FR"], "chinese_label": True, "traceable": True,
        "no_reason_return_7d": True, "offline_no_reason_return": True,
        "advance_compensation": True, "valid_until": date(2027, 12, 31), "complaints_12m": 0,
        "unresolved_12m": 0, "inspections_12m": 0, "failed_inspections_12m": 0,
        "gift_score": None, "score_compliance": 40.0, "score_complaints": 30.0,
        "score_quality": 20.0, "score": 90.0, "grade": "A", "trusted": True,
        "disqualifications": [], "first_listed_on": TODAY, "last_changed_on": TODAY,
        "source_batches": ["B1"], "verdict": "trusted",
    }
    rows = [row | {"uscc": "91310000MA00000002", "score_quality": 0.0, "score": 70.0,
                   "grade": "B"}, row | changes]
    frame = pl.DataFrame(rows, schema_overrides={
        "gift_score": pl.Float64, "disqualifications": pl.List(pl.String)})
    return frame.select(MERCHANT_COLUMNS)
