"""Stories of the joint complaint analysis (docs/architecture.md §10): what a consumer app reads
in ``complaints_summary.parquet`` when several councils receive complaints about one merchant."""

from __future__ import annotations

from datetime import date

from council_world import CouncilWorld, complaint, filing, merchant_code

from registry.snapshot.reader import open_snapshot


def summary_rows(w: CouncilWorld) -> dict[tuple[str, str, date], dict]:
    """The latest snapshot's complaints summary, by (region, category, month)."""
    table = open_snapshot(w.storage).complaints_summary.collect()
    return {(r["region"], r["category"], r["month"]): r for r in table.iter_rows(named=True)}


def test_a_merchant_named_by_two_councils_shows_as_named_in_other_regions(tmp_path):
    """Jiangsu lists three merchants. Jiangsu and Zhejiang each receive a complaint about X in
    June; Zhejiang also one about Y. An app reading the joint analysis sees, in both councils'
    rows, that X was named in more than one region, and Y in Zhejiang alone. Then Zhejiang
    closes its complaint about X, recovering 1,200.50 yuan: the next snapshot counts it once,
    as resolved in 10 days, with the amount recovered."""
    w = CouncilWorld(tmp_path)
    x, y, z = (merchant_code("JS", n) for n in (1, 2, 3))
    w.upload("JS", "merchants", [filing("JS", "JS-1", x), filing("JS", "JS-2", y),
                                 filing("JS", "JS-3", z)])
    w.upload("JS", "complaints", [complaint("JS-C1", x, **{"Received On": "2026-06-03"})])
    w.upload("ZJ", "complaints", [
        complaint("ZJ-C1", x, Category="after_sales", **{"Received On": "2026-06-15"}),
        complaint("ZJ-C2", y, Category="after_sales", **{"Received On": "2026-06-20"}),
    ])
    w.ingest()
    w.publish()
    rows = summary_rows(w)
    june = date(2026, 6, 1)
    assert sorted(rows) == [("JS", "quality", june), ("ZJ", "after_sales", june)]
    js, zj = rows[("JS", "quality", june)], rows[("ZJ", "after_sales", june)]
    assert (js["received"], js["resolved"], js["unresolved"]) == (1, 0, 1)
    assert (js["merchants_named"], js["merchants_named_in_other_regions"]) == (1, 1)
    assert (zj["received"], zj["resolved"], zj["unresolved"]) == (2, 0, 2)
    # X is named in Jiangsu too; Y only in Zhejiang.
    assert (zj["merchants_named"], zj["merchants_named_in_other_regions"]) == (2, 1)
    assert (zj["median_days_to_resolve"], zj["recovered_amount_cny"]) == (None, 0.0)

    w.upload("ZJ", "complaints", [
        complaint("ZJ-C1", x, Category="after_sales", Status="resolved",
                  **{"Received On": "2026-06-15", "Resolved On": "2026-06-25",
                     "Recovered Amount CNY": "1200.50"}),
    ])
    w.ingest()
    w.publish()
    zj = summary_rows(w)[("ZJ", "after_sales", june)]
    assert (zj["received"], zj["resolved"], zj["unresolved"]) == (2, 1, 1)
    assert (zj["median_days_to_resolve"], zj["recovered_amount_cny"]) == (10.0, 1200.5)
    assert (zj["merchants_named"], zj["merchants_named_in_other_regions"]) == (2, 1)
    # The merchants table agrees: X's two complaints, one still open.
    row = w.merchant(x)
    assert (row["complaints_12m"], row["unresolved_12m"]) == (2, 1)
