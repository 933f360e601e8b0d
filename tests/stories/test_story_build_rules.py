"""Stories of the build rules (docs/architecture.md, Which filings list a merchant): which
filings list a merchant, which only disqualify it, and how gift scores are rounded. Each runs
the real ingest and publication."""

from __future__ import annotations

from council_world import CouncilWorld, filing, merchant_code

from registry.snapshot.reader import open_snapshot


def evaluations(uscc: str, product_id: str, scores: dict[str, list[float]]) -> list[dict]:
    """A ZJ panel's rows for one product, one evaluator per position in ``scores``' lists,
    under the council's Chinese headers."""
    headers = {"quality": "品质", "culture": "文化特色", "packaging": "包装设计", "value": "性价比"}
    evaluators = len(next(iter(scores.values())))
    return [
        {"产品编号": product_id, "统一社会信用代码": uscc, "产品名称": "西湖龙井礼盒",
         "产地": "杭州", "品类": "tea", "评测批次": "2026", "评审员编号": f"E{i + 1}",
         **{headers[d]: str(points[i]) for d, points in scores.items()}}
        for i in range(evaluators)
    ]


def test_a_merchant_whose_only_filing_is_revoked_is_no_longer_listed(tmp_path):
    """Jiangsu files three merchants and the registry lists them. Then Jiangsu revokes X's
    filing (its only one) and uploads its list again: X must disappear from the registry,
    and the delta must tell consumer apps that X was removed, not merely downgraded."""
    w = CouncilWorld(tmp_path)
    x, y, z = w.three_listed("JS")
    assert w.merchant(x) is not None

    w.upload("JS", "merchants", [filing("JS", "JS-1", x, Status="revoked"),
                                 filing("JS", "JS-2", y), filing("JS", "JS-3", z)])
    w.ingest()
    w.publish()
    assert sorted(w.merchants()) == [y, z]
    assert w.changes() == {x: "removed"}


def test_a_revoked_filing_elsewhere_disqualifies_but_does_not_lower_the_score(tmp_path):
    """Shanghai files X as an importer making every commitment. Jiangsu, where X also traded,
    revokes its filing, which had promised nothing. X stays listed from Shanghai with
    Shanghai's full compliance score, but it is trusted nowhere and says why."""
    w = CouncilWorld(tmp_path)
    x = merchant_code("SH", 1)
    # Shanghai's template carries the store's district and address (its gate requires them).
    where = {"District": "黄浦区", "Address": "中山东一路1号"}
    w.upload("SH", "merchants", [filing("SH", f"SH-{n}", merchant_code("SH", n), **where)
                                 for n in (1, 2, 3)])
    no_promises = dict.fromkeys(("Chinese Label", "Traceable", "No Reason Return 7d",
                                 "Offline No Reason Return", "Advance Compensation"), "N")
    w.upload("JS", "merchants", [filing("JS", "JS-9", x, Status="revoked", **no_promises),
                                 filing("JS", "JS-2", merchant_code("JS", 2)),
                                 filing("JS", "JS-3", merchant_code("JS", 3))])
    w.ingest()
    w.publish()
    row = w.merchant(x)
    assert row is not None
    assert (row["regions"], row["traceable"], row["score_compliance"]) == (["SH"], True, 40.0)
    assert (row["grade"], row["trusted"], row["verdict"], row["disqualifications"]) == (
        None, False, "disqualified", ["status_revoked"])


def test_an_expired_active_filing_does_not_list_the_merchant(tmp_path):
    """Anhui's list still carries X as active, but X's filing ran out before the snapshot's
    day. A consumer must not find X in the registry, while Anhui's current filings stay."""
    w = CouncilWorld(tmp_path)
    x, y, z = (merchant_code("AH", n) for n in (1, 2, 3))
    w.upload("AH", "merchants", [filing("AH", "AH-1", x, **{"Valid Until": "2026-11-29"}),
                                 filing("AH", "AH-2", y), filing("AH", "AH-3", z)])
    w.ingest()
    w.publish()
    assert sorted(w.merchants()) == [y, z]


def test_a_gift_score_is_rounded_once_when_published(tmp_path):
    """Zhejiang files a specialty-gift merchant whose tea set three panel members evaluate.
    Its overall score is the mean of four dimensions of thirds (8.1666…, 8.1666…, 8, 8):
    8.083…, published as 8.08, not 8.09 from the dimensions rounded first; the merchant's
    quality points come from that unrounded mean (24.25)."""
    w = CouncilWorld(tmp_path)
    x = merchant_code("ZJ", 1)
    w.upload("ZJ", "merchants", [
        filing("ZJ", "ZJ-1", x, Program="specialty_gift", Categories="tea"),
        filing("ZJ", "ZJ-2", merchant_code("ZJ", 2)), filing("ZJ", "ZJ-3", merchant_code("ZJ", 3)),
    ])
    w.upload("ZJ", "gift_evaluations", evaluations(x, "G-1", {
        "quality": [8.0, 8.0, 8.5], "culture": [8.0, 8.0, 8.5],
        "packaging": [8.0, 8.0, 8.0], "value": [8.0, 8.0, 8.0],
    }))
    w.ingest()
    w.publish()
    product = open_snapshot(w.storage).products.collect().row(0, named=True)
    assert (product["quality"], product["culture"], product["overall"]) == (8.17, 8.17, 8.08)
    row = w.merchant(x)
    assert row is not None
    assert (row["gift_score"], row["score_quality"], row["score"]) == (8.08, 24.25, 94.25)
