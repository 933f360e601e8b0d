"""The 12315 case system files each complaint under its own category names: 产品质量 (product
quality), 食品安全 (food safety), 退换货 (returns and exchanges), 维修 (repairs), 三包 (the
statutory repair-replace-refund guarantee), 合同违约 (breach of contract), 价格欺诈 (price
fraud). A council's export keeps them. Every such row was refused (``ENUM_INVALID``) for its
category alone, so the complaint counted nowhere, open or not, and a merchant with six open
complaints stayed trusted. The system's names are read as the registry's categories; a
category the registry cannot place (服务态度, how staff behaved) is still refused and says
why."""

from __future__ import annotations

from council_world import CouncilWorld, complaint

from registry.build.scores import DISQUALIFIER_UNRESOLVED

SYSTEM_CATEGORIES = {"产品质量": "quality", "食品安全": "safety", "退换货": "after_sales",
                     "维修": "after_sales", "三包": "after_sales", "合同违约": "contract",
                     "价格欺诈": "price"}


def test_complaints_filed_under_the_case_systems_categories_count(tmp_path):
    """Anhui's export lists seven open complaints about X, one under each of the system's
    categories: X has seven open complaints and is disqualified, and the joint analysis counts
    each under the registry's category."""
    w = CouncilWorld(tmp_path)
    x, _, _ = w.three_listed("AH")
    key = w.upload("AH", "complaints", [
        complaint(f"AH-C{n}", x, Category=word)
        for n, word in enumerate(SYSTEM_CATEGORIES, start=1)])
    w.ingest_accepted(key, 7)
    w.publish()
    listed = w.merchant(x)
    assert (listed["complaints_12m"], listed["unresolved_12m"]) == (7, 7)
    assert DISQUALIFIER_UNRESOLVED in listed["disqualifications"]
    summary = w.complaints_summary()
    assert {category: row["received"] for (region, category, _), row in summary.items()
            if region == "AH"} == {"quality": 1, "safety": 1, "after_sales": 3, "contract": 1,
                                   "price": 1}


def test_complaints_filed_as_qita_with_the_other_ta_count(tmp_path):
    """Zhejiang's clerks write "other" as 其它 (with 它, as common as 其他 in office writing),
    and so does its export: six open complaints about X under 其它, and one about Y under
    其它问题. Each row was refused for its category alone, so X stayed trusted with six open
    complaints. Now 其它 is read as ``other``, as 其他 is: X is disqualified, and the joint
    analysis counts seven complaints under ``other``."""
    w = CouncilWorld(tmp_path)
    x, y, _ = w.three_listed("ZJ")
    key = w.upload("ZJ", "complaints", [
        *(complaint(f"ZJ-C{n}", x, Category="其它") for n in range(1, 7)),
        complaint("ZJ-C7", y, Category="其它问题")])
    w.ingest_accepted(key, 7)
    w.publish()
    listed = w.merchant(x)
    assert (listed["unresolved_12m"], listed["verdict"]) == (6, "disqualified")
    assert {category: row["received"] for (region, category, _), row
            in w.complaints_summary().items() if region == "ZJ"} == {"other": 7}


def test_a_category_the_registry_cannot_place_is_still_refused(tmp_path):
    """Guard: Shanghai files one complaint under 服务态度 (how staff behaved), which none of the
    registry's categories means. The row is refused and its reason lists the categories."""
    w = CouncilWorld(tmp_path)
    x, _, _ = w.three_listed("SH")
    key = w.upload("SH", "complaints", [complaint("SH-C1", x, Category="服务态度")])
    receipt = w.receipt(w.ingest()[key])
    assert [(e["column"], e["code"]) for e in receipt["row_errors"]] == [
        ("category", "ENUM_INVALID")]
    assert "after_sales" in receipt["row_errors"][0]["message_en"]
