"""The registry build on tiny staged frames: merging, latest-row-wins, windows, names, gift
products, and which batches count."""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl
import pytest
from staged_rows import (
    AS_OF,
    batch_record,
    complaint,
    evaluation,
    inputs_of,
    inspection,
    merchant,
    stage_batch,
    staged_frame,
    uscc,
)

from registry import ledger
from registry.build.columns import (
    MERCHANT_COLUMNS,
    STAGED_COLUMNS,
    StagedInputs,
    StagedSchemaError,
)
from registry.build.merchants import latest_rows
from registry.build.tables import registry_tables
from registry.config.contracts import load_contracts, natural_keys
from registry.config.regions import load_regions
from registry.config.score_model import load_score_model
from registry.config.settings import PROJECT_ROOT
from registry.ledger import batches_in_effect
from registry.publish.inputs import staged_inputs

MODEL = load_score_model(PROJECT_ROOT / "config", 1).model
DIVISIONS = load_regions(PROJECT_ROOT / "config").division_regions
KEYS = natural_keys(load_contracts(PROJECT_ROOT / "schemas"))
SH_1 = uscc("31", 1)


def build(as_of: date = AS_OF, **datasets):
    tables = registry_tables(inputs_of(**datasets), as_of, MODEL, DIVISIONS, KEYS)
    return tables.merchants.collect(), tables.products.collect()


def by_uscc(merchants: pl.DataFrame, code: str = SH_1) -> dict:
    rows = merchants.filter(pl.col("uscc") == code).to_dicts()
    assert len(rows) == 1, f"{code} listed {len(rows)} times"
    return rows[0]


def test_a_filing_revoked_in_AH_disqualifies_the_SH_merchant_but_neither_lists_nor_scores_it():
    merchants, _ = build(
        merchants=[
            merchant(region="SH", filing_id="SH-1"),
            merchant(region="AH", filing_id="AH-9", city="合肥", status="revoked",
                     merchant_name="合肥进口商品有限公司", merchant_name_key="合肥进口商品有限公司",
                     categories=["wine"], traceable=False, valid_until=date(2029, 1, 1)),
        ]
    )
    row = by_uscc(merchants)
    assert row["regions"] == ["SH"] and row["name_variants"] == ["上海进口商品有限公司"]
    assert row["categories"] == ["food"] and row["valid_until"] == date(2027, 12, 31)
    assert row["traceable"] is True and row["score_compliance"] == 40.0
    assert row["score"] == 90.0 and row["grade"] is None
    assert row["disqualifications"] == ["status_revoked"]
    assert row["trusted"] is False and row["verdict"] == "disqualified"


def test_a_disqualifier_from_an_expired_filing_elsewhere_still_applies():
    merchants, _ = build(
        merchants=[
            merchant(region="SH", filing_id="SH-1"),
            merchant(region="AH", filing_id="AH-9", status="suspended",
                     valid_until=date(2026, 1, 1)),
        ]
    )
    row = by_uscc(merchants)
    assert row["regions"] == ["SH"]  # only filings in force list a merchant in a region
    assert row["disqualifications"] == ["status_suspended"] and row["trusted"] is False


def test_serious_failure_and_complaints_reported_by_other_regions_count_everywhere():
    merchants, _ = build(
        merchants=[merchant(region="SH")],
        inspections=[inspection(region="ZJ", result="fail", severity="serious")],
        complaints=[
            complaint(region=r, complaint_id=f"{r}{i}", status="unresolved")
            for r in ("JS", "AH") for i in range(3)
        ],
    )
    row = by_uscc(merchants)
    assert row["failed_inspections_12m"] == 1 and row["unresolved_12m"] == 6
    assert row["disqualifications"] == [
        "serious_inspection_failure", "unresolved_complaints_over_limit",
    ]
    assert row["score_complaints"] == 12.0 and row["score_quality"] == 0.0


def test_latest_staged_row_wins_per_region_and_filing():
    older = staged_frame("merchants", [merchant(status="suspended", traceable=False)], "B0001")
    newer = staged_frame("merchants", [merchant(status="active")], "B0002")
    merchants, _ = build(merchants=pl.concat([newer, older]))
    row = by_uscc(merchants)
    assert row["disqualifications"] == [] and row["traceable"] is True
    assert row["source_batches"] == ["B0002"]


def test_a_restated_row_in_the_same_batch_wins_by_its_later_source_row():
    restated = staged_frame("merchants", [merchant(status="suspended"),
                                          merchant(status="active")], "B0001")
    merchants, _ = build(merchants=restated)
    assert by_uscc(merchants)["disqualifications"] == []


def test_inputs_holding_only_current_rows_build_the_same_registry():
    staged = inputs_of(
        merchants=pl.concat([
            staged_frame("merchants", [merchant(status="suspended", traceable=False),
                                       merchant(filing_id="F2", uscc=uscc("31", 2))], "B0001"),
            staged_frame("merchants", [merchant(status="active")], "B0002"),
        ]),
        complaints=pl.concat([
            staged_frame("complaints", [complaint(status="unresolved")], "B0001"),
            staged_frame("complaints", [complaint(status="resolved"),
                                        complaint(complaint_id="C2", status="unresolved")],
                         "B0002"),
        ]),
        gift_evaluations=[evaluation(evaluator_id=f"E{i}", quality=float(i)) for i in range(6)],
    )
    current = StagedInputs(
        **{dataset: latest_rows(getattr(staged, dataset), KEYS[dataset]).collect().lazy()
           for dataset in STAGED_COLUMNS},
        current=True,
    )
    built, from_current = (registry_tables(inputs, AS_OF, MODEL, DIVISIONS, KEYS)
                           for inputs in (staged, current))
    assert built.merchants.collect().equals(from_current.merchants.collect())
    assert built.products.collect().equals(from_current.products.collect())
    assert built.complaints_summary.collect().equals(from_current.complaints_summary.collect())
    # C1 restated as resolved counts once, as resolved.
    row = by_uscc(from_current.merchants.collect())
    assert (row["complaints_12m"], row["unresolved_12m"]) == (2, 1)


def test_only_active_filings_within_their_dates_on_as_of_list_a_merchant():
    merchants, _ = build(
        merchants=[
            merchant(filing_id="expired", uscc=uscc("31", 2), valid_until=AS_OF - timedelta(1)),
            merchant(filing_id="future", uscc=uscc("31", 3), valid_from=AS_OF + timedelta(1)),
            merchant(filing_id="last-day", uscc=uscc("31", 4), valid_until=AS_OF),
            merchant(filing_id="open", uscc=uscc("31", 5), valid_until=None),
            merchant(filing_id="revoked", uscc=uscc("31", 6), status="revoked"),
            merchant(filing_id="suspended", uscc=uscc("31", 7), status="suspended",
                     valid_until=None),
        ]
    )
    assert merchants.get_column("uscc").to_list() == [uscc("31", 4), uscc("31", 5)]


def test_a_merchant_revoked_in_one_region_and_suspended_in_another_is_not_listed():
    merchants, _ = build(
        merchants=[
            merchant(region="SH", filing_id="SH-1", status="revoked"),
            merchant(region="AH", filing_id="AH-1", status="suspended"),
            merchant(region="SH", filing_id="SH-2", uscc=uscc("31", 2)),
        ]
    )
    assert merchants.get_column("uscc").to_list() == [uscc("31", 2)]


def test_windows_are_the_365_days_up_to_as_of():
    merchants, _ = build(
        merchants=[merchant()],
        complaints=[
            complaint(complaint_id="edge-out", received_on=AS_OF - timedelta(365)),
            complaint(complaint_id="edge-in", received_on=AS_OF - timedelta(364)),
            complaint(complaint_id="today", received_on=AS_OF),
            complaint(complaint_id="after", received_on=AS_OF + timedelta(1)),
        ],
        inspections=[
            inspection(inspection_id="old", tested_on=AS_OF - timedelta(400), result="fail",
                       severity="serious"),
            inspection(inspection_id="new", tested_on=AS_OF - timedelta(10)),
        ],
    )
    row = by_uscc(merchants)
    assert row["complaints_12m"] == 2
    assert (row["inspections_12m"], row["failed_inspections_12m"]) == (1, 0)
    assert row["disqualifications"] == []
    # The same data a year later: everything has aged out.
    later, _ = build(
        as_of=AS_OF + timedelta(400),
        merchants=[merchant(valid_until=None)],
        complaints=[complaint(received_on=AS_OF)],
    )
    assert by_uscc(later)["complaints_12m"] == 0


def test_names_are_merged_with_variants_kept_and_conflicts_flagged():
    merchants, _ = build(
        merchants=[
            # Traditional and Simplified spellings share a matching key: a variant, no conflict.
            merchant(region="AH", filing_id="A", merchant_name="上海國際貿易有限公司",
                     merchant_name_key="上海国际贸易有限公司"),
            merchant(region="SH", filing_id="S", merchant_name="上海国际贸易有限公司",
                     merchant_name_key="上海国际贸易有限公司"),
            merchant(region="ZJ", filing_id="Z", uscc=uscc("33", 7), merchant_name="甲公司",
                     merchant_name_key="甲公司"),
            merchant(region="JS", filing_id="J", uscc=uscc("33", 7), merchant_name="乙公司",
                     merchant_name_key="乙公司"),
        ]
    )
    same = by_uscc(merchants)
    assert same["name"] == "上海国际贸易有限公司"  # as filed in the registered region (SH)
    assert same["name_variants"] == ["上海国际贸易有限公司", "上海國際貿易有限公司"]
    assert same["name_conflict"] is False
    clash = by_uscc(merchants, uscc("33", 7))
    assert clash["name"] == "甲公司" and clash["registered_region"] == "ZJ"
    assert clash["name_conflict"] is True and clash["name_variants"] == ["乙公司", "甲公司"]


def test_lists_are_unions_and_commitments_must_hold_in_every_filing():
    merchants, _ = build(
        merchants=[
            merchant(region="SH", filing_id="S", categories=["wine", "food"],
                     origin_countries=["FR"]),
            merchant(region="JS", filing_id="J", categories=["food", "cosmetics"],
                     origin_countries=["JP", "FR"], program="specialty_gift",
                     advance_compensation=False, valid_until=date(2028, 6, 30)),
        ]
    )
    row = by_uscc(merchants)
    assert row["categories"] == ["cosmetics", "food", "wine"]
    assert row["origin_countries"] == ["FR", "JP"]
    assert row["programs"] == ["imported_goods", "specialty_gift"]
    assert row["advance_compensation"] is False and row["score_compliance"] == 35.0
    assert row["valid_until"] == date(2028, 6, 30)


def test_published_columns_are_fixed_and_carry_no_pii():
    merchants, products = build(
        merchants=[merchant()], complaints=[complaint()], gift_evaluations=[evaluation()]
    )
    assert tuple(merchants.columns) == tuple(
        c for c in MERCHANT_COLUMNS if c not in ("first_listed_on", "last_changed_on")
    )
    for column in ("contact_name", "contact_phone", "consumer_name", "consumer_phone"):
        assert column not in merchants.columns and column not in products.columns


def test_gift_dimensions_are_trimmed_means_once_there_are_five_evaluators():
    four = [evaluation(product_id="P4", evaluator_id=f"E{i}", quality=q)
            for i, q in enumerate([0.0, 6.0, 7.0, 10.0])]
    five = [evaluation(product_id="P5", evaluator_id=f"E{i}", quality=q)
            for i, q in enumerate([0.0, 6.0, 7.0, 8.0, 10.0])]
    twenty = [evaluation(product_id="P20", evaluator_id=f"E{i:02d}", quality=float(q))
              for i, q in enumerate([0, 0] + [5] * 16 + [10, 10])]
    _, products = build(gift_evaluations=four + five + twenty)
    quality = dict(zip(products["product_id"], products["quality"], strict=True))
    assert quality["P4"] == 5.75  # no trimming below five evaluators
    assert quality["P5"] == 7.0  # drop 0 and 10
    assert quality["P20"] == 5.0  # floor(20 * 10%) = 2 dropped from each end
    p5 = products.filter(pl.col("product_id") == "P5").row(0, named=True)
    assert p5["evaluators"] == 5 and p5["overall"] == 7.75  # mean of 7, 8, 8, 8


def test_products_rank_within_category_and_round():
    rows = [
        evaluation(product_id="tea-a", quality=9.0),
        evaluation(product_id="tea-b", region="AH", quality=7.0),
        evaluation(product_id="tea-c", quality=9.0),
        evaluation(product_id="cake", category="pastry", quality=1.0),
        evaluation(product_id="tea-a", evaluation_round="2025", quality=2.0),
    ]
    _, products = build(gift_evaluations=rows)
    ranks = {
        (r["product_id"], r["evaluation_round"]): r["rank_in_category"]
        for r in products.to_dicts()
    }
    assert ranks == {
        ("tea-a", "2026"): 1, ("tea-c", "2026"): 1, ("tea-b", "2026"): 3,
        ("cake", "2026"): 1, ("tea-a", "2025"): 1,
    }


def test_gift_score_feeds_quality_for_specialty_gift_merchants():
    code = uscc("33", 1)
    merchants, _ = build(
        merchants=[merchant(region="ZJ", uscc=code, program="specialty_gift")],
        gift_evaluations=[
            evaluation(product_id="P1", quality=9.0, culture=9.0, packaging=9.0, value=9.0),
            evaluation(product_id="P2", quality=7.0, culture=7.0, packaging=7.0, value=7.0),
        ],
    )
    row = by_uscc(merchants, code)
    assert row["gift_score"] == 8.0 and row["score_quality"] == 24.0


def test_gift_scores_come_from_unrounded_means_and_are_rounded_once_when_published():
    code = uscc("33", 1)
    # Quality and culture 8, 8, 8.5 (8.1666...), packaging and value 8: overall 8.0833...
    panel = [evaluation(uscc=code, evaluator_id=f"E{i}", quality=q, culture=q)
             for i, q in enumerate([8.0, 8.0, 8.5])]
    merchants, products = build(
        merchants=[merchant(region="ZJ", uscc=code, program="specialty_gift")],
        gift_evaluations=panel,
    )
    product = products.row(0, named=True)
    # Not 8.09, the mean of the dimensions as published (8.17, 8.17, 8, 8).
    assert (product["quality"], product["packaging"], product["overall"]) == (8.17, 8.0, 8.08)
    row = by_uscc(merchants, code)
    # 8.0833... / 10 * 30 = 24.25; the published 8.08 would give 24.24.
    assert (row["gift_score"], row["score_quality"], row["score"]) == (8.08, 24.25, 94.25)


def test_products_published_with_the_same_overall_share_a_rank():
    dimensions = ("quality", "culture", "packaging", "value")
    thirds = [evaluation(product_id="A", evaluator_id=f"E{i}", **dict.fromkeys(dimensions, q))
              for i, q in enumerate([8.0, 8.0, 9.0])]
    _, products = build(gift_evaluations=[
        *thirds,  # 8.3333... and 8.33 are both published as 8.33
        evaluation(product_id="B", **dict.fromkeys(dimensions, 8.33)),
        evaluation(product_id="C", **dict.fromkeys(dimensions, 8.32)),
    ])
    published = {r["product_id"]: (r["overall"], r["rank_in_category"])
                 for r in products.to_dicts()}
    assert published == {"A": (8.33, 1), "B": (8.33, 1), "C": (8.32, 3)}


def test_the_build_is_deterministic():
    datasets = dict(
        merchants=[merchant(filing_id=f"F{i}", uscc=uscc("31", i % 7)) for i in range(40)],
        complaints=[complaint(complaint_id=f"C{i}", uscc=uscc("31", i % 5),
                              status=["resolved", "unresolved"][i % 2]) for i in range(30)],
        gift_evaluations=[evaluation(product_id=f"P{i % 4}", evaluator_id=f"E{i}",
                                     quality=float(i % 10)) for i in range(24)],
    )
    first, second = build(**datasets), build(**datasets)
    assert first[0].equals(second[0]) and first[1].equals(second[1])


# ---------------------------------------------------------------------------------------------
# Reading the batches in effect (which batches count: tests/ledger/)


def test_replace_mode_withdraws_filings_missing_from_the_latest_full_list(storage):
    first = [merchant(filing_id="F1"), merchant(filing_id="F2", uscc=uscc("31", 2))]
    stage_batch(storage, "merchants", "SH", "B1", first, mode="replace")
    stage_batch(storage, "merchants", "SH", "B2", [merchant(filing_id="F1")], mode="replace")
    # A held replace batch does not count: it could be a truncated export.
    stage_batch(storage, "merchants", "SH", "B3", [], mode="replace", status="held")
    inputs = staged_inputs(storage, batches_in_effect(storage), KEYS)
    merchants = registry_tables(inputs, AS_OF, MODEL, DIVISIONS, KEYS).merchants.collect()
    assert merchants.get_column("uscc").to_list() == [SH_1]


def test_a_filing_quarantined_in_a_complete_list_keeps_its_previous_row(storage):
    first = [merchant(filing_id="F1"), merchant(filing_id="F2", uscc=uscc("31", 2))]
    stage_batch(storage, "merchants", "SH", "B1", first, mode="replace")
    # F2's row in the new list had a typo in its code: quarantined, so it keeps B1's row.
    stage_batch(storage, "merchants", "SH", "B2", [merchant(filing_id="F1")], mode="replace",
                quarantined=[{"filing_id": "F2", "uscc": "9131TYPO"}])
    merchants = registry_tables(staged_inputs(storage, batches_in_effect(storage), KEYS), AS_OF,
                                MODEL, DIVISIONS, KEYS).merchants.collect()
    assert merchants.get_column("uscc").to_list() == [SH_1, uscc("31", 2)]
    assert by_uscc(merchants, uscc("31", 2))["source_batches"] == ["B1"]


def test_a_staged_batch_with_the_wrong_types_is_refused_by_name(tmp_path):
    from registry.storage import LocalStorage

    storage = LocalStorage(tmp_path)
    stage_batch(storage, "complaints", "SH", "B1", [complaint()])
    bad = staged_frame("complaints", [complaint()], "B2").with_columns(
        pl.col("received_on").cast(pl.String)
    )
    storage.write_parquet(bad, "staged/complaints/region=SH/batch=B2/part-0.parquet")
    effect = ledger.InEffect("complaints", "SH", (batch_record("B2", dataset="complaints"),))
    with pytest.raises(StagedSchemaError, match="received_on is String, expected Date"):
        staged_inputs(storage, [effect], KEYS)


def test_the_build_reads_exactly_what_the_ingest_contracts_stage():
    contracts = load_contracts(PROJECT_ROOT / "schemas")
    for dataset, columns in STAGED_COLUMNS.items():
        staged = contracts[dataset].staged_schema()
        assert {c: staged.get(c) for c in columns} == columns, dataset
