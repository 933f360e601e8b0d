"""A consumer withdraws a complaint (撤诉), the merchant settles it (调解成功), or the office gives
up its mediation (终止调解): what a consumer app then reads of the merchant and in the joint
complaint analysis (docs/stories.md, "A complaint withdrawn, settled, or closed unsettled")."""

from __future__ import annotations

from datetime import date

from council_world import CouncilWorld, complaint, csv_bytes

from registry.build.scores import DISQUALIFIER_UNRESOLVED

JUNE = date(2026, 6, 1)


def case_export(rows: list[tuple[str, str, str, str]], uscc: str) -> bytes:
    """Zhejiang's 12315 case system export: (complaint number, received, status, closed on)."""
    return csv_bytes([{"投诉编号": number, "统一社会信用代码": uscc, "受理日期": received,
                       "投诉类别": "质量", "处理状态": status, "办结日期": closed}
                      for number, received, status, closed in rows])


def complained_about(w: CouncilWorld, region: str, complaints: int) -> str:
    """``region`` lists three merchants; in June ``complaints`` consumers complain about the
    first, X, and its export lists them all as being handled (处理中), numbered {region}-C1...
    The registry is published; X is returned."""
    x, _, _ = w.three_listed(region)
    opened = [(f"{region}-C{n}", f"2026-06-0{n}", "处理中", "")
              for n in range(1, complaints + 1)]
    w.upload(region, "complaints", case_export(opened, x), name="12315导出-6月.csv")
    w.ingest()
    w.publish()
    return x


def summary_row(w: CouncilWorld, region: str, category: str, month: date) -> dict:
    return w.complaints_summary()[(region, category, month)]


def test_complaints_the_consumers_withdrew_no_longer_count_as_open(tmp_path):
    """Zhejiang lists X. In June six consumers complain about X; all six are being handled,
    more than the five open complaints a trusted merchant may have, so X is disqualified.
    In July four of them withdraw (撤诉). Zhejiang's next export lists those four as 撤诉,
    with the day each was closed. Before, every 撤诉 row was refused as an unknown status, the
    four stayed open, and X stayed disqualified for complaints its consumers had dropped.

    Now 撤诉 is read as the case system counts it, one way a case is closed (办结): status
    ``resolved``, as 已办结 already is. X has six complaints in the window, two of them open,
    and is trusted again; the four count as closed complaints in the score (one point for the
    fourth, beyond the three free) and as resolved in the joint analysis, their days to close
    included."""
    w = CouncilWorld(tmp_path)
    x = complained_about(w, "ZJ", 6)
    listed = w.merchant(x)
    assert (listed["complaints_12m"], listed["unresolved_12m"]) == (6, 6)
    assert DISQUALIFIER_UNRESOLVED in listed["disqualifications"]

    withdrawn = [(f"ZJ-C{n}", f"2026-06-0{n}", "撤诉", "2026-07-10") for n in range(1, 5)]
    key = w.upload("ZJ", "complaints", case_export(withdrawn, x), name="12315导出-7月.csv")
    w.ingest_accepted(key, 4)
    w.publish()

    listed = w.merchant(x)
    assert (listed["complaints_12m"], listed["unresolved_12m"]) == (6, 2)
    assert listed["disqualifications"] == []
    # 30 points, less 3 for each of the two open complaints and 1 for the fourth closed one.
    assert listed["score_complaints"] == 23
    assert listed["verdict"] == "trusted"
    june = summary_row(w, "ZJ", "quality", JUNE)
    assert (june["received"], june["resolved"], june["unresolved"]) == (6, 4, 2)
    # Closed on 10 July after 39, 38, 37 and 36 days.
    assert june["median_days_to_resolve"] == 37.5


def test_a_withdrawn_complaint_the_consumer_renews_is_open_again(tmp_path):
    """Guard: 撤诉 is the complaint's state now, not for ever. Shanghai lists X; a complaint
    about X is withdrawn, then the consumer renews it and the office reopens the same number
    as 处理中. The app reads one complaint, open."""
    w = CouncilWorld(tmp_path)
    x, _, _ = w.three_listed("SH")
    w.upload("SH", "complaints", [complaint("SH-C1", x, Status="撤诉",
                                            **{"Resolved On": "2026-06-05"})])
    w.ingest()
    w.publish()
    assert (w.merchant(x)["complaints_12m"], w.merchant(x)["unresolved_12m"]) == (1, 0)
    assert summary_row(w, "SH", "quality", JUNE)["resolved"] == 1

    w.upload("SH", "complaints", [complaint("SH-C1", x, Status="处理中")])
    w.ingest()
    w.publish()
    assert (w.merchant(x)["complaints_12m"], w.merchant(x)["unresolved_12m"]) == (1, 1)
    june = summary_row(w, "SH", "quality", JUNE)
    assert (june["received"], june["resolved"], june["unresolved"]) == (1, 0, 1)


def test_cases_ended_unsettled_count_as_open_complaints(tmp_path):
    """Anhui's monthly 12315 export lists the cases closed that month. Six about X ended with
    the mediation given up, 终止调解 or 调解失败: the merchant did not settle, and none had been
    sent before while open. Before, every such row was refused as an unknown status, so X's
    six complaints counted nowhere and X stayed trusted. Now they are read as ``unresolved``:
    closed for the office, not resolved for the consumer. X has six open complaints, more than
    five, and is disqualified; a withdrawal (撤诉) in the same file is closed."""
    w = CouncilWorld(tmp_path)
    x, y, _ = w.three_listed("AH")
    ended = [(f"AH-C{n}", f"2026-06-0{n}", "终止调解" if n % 2 else "调解失败", "2026-07-10")
             for n in range(1, 7)]
    key = w.upload("AH", "complaints", case_export(ended, x)
                   + case_export([("AH-C7", "2026-06-07", "撤诉", "2026-07-10")], y)
                   .split(b"\n", 1)[1], name="12315导出-7月办结.csv")
    w.ingest_accepted(key, 7)
    w.publish()
    listed = w.merchant(x)
    assert (listed["complaints_12m"], listed["unresolved_12m"]) == (6, 6)
    assert DISQUALIFIER_UNRESOLVED in listed["disqualifications"]
    assert (w.merchant(y)["complaints_12m"], w.merchant(y)["unresolved_12m"]) == (1, 0)
    june = summary_row(w, "AH", "quality", JUNE)
    assert (june["received"], june["resolved"], june["unresolved"]) == (7, 1, 6)


SETTLED = ["调解成功", "已调解", "达成调解", "和解", "已和解", "达成和解", "结案", "已结案"]


def test_complaints_the_merchant_settled_no_longer_count_as_open(tmp_path):
    """Jiangsu sent eight complaints about X as 处理中: X is disqualified, more than five open.
    The office mediates every one, and the next export lists them as the case system words a
    settled case: 调解成功 (mediated), 已调解, 达成调解, 和解 (settled between them), 已和解,
    达成和解, and 结案 or 已结案 (case closed, as 办结), each with the day it closed. Before,
    every such row was refused as an unknown status, so the eight stayed open and X stayed
    disqualified for complaints it had settled. Now they are ``resolved``: X has eight closed
    complaints, loses one point for each beyond the third, and is trusted."""
    w = CouncilWorld(tmp_path)
    x = complained_about(w, "JS", 8)
    assert DISQUALIFIER_UNRESOLVED in w.merchant(x)["disqualifications"]

    settled = [(f"JS-C{n}", f"2026-06-0{n}", word, "2026-07-10")
               for n, word in enumerate(SETTLED, start=1)]
    key = w.upload("JS", "complaints", case_export(settled, x), name="12315导出-7月.csv")
    w.ingest_accepted(key, 8)
    w.publish()
    listed = w.merchant(x)
    assert (listed["complaints_12m"], listed["unresolved_12m"]) == (8, 0)
    assert listed["score_complaints"] == 25
    assert listed["verdict"] == "trusted"
    june = summary_row(w, "JS", "quality", JUNE)
    assert (june["received"], june["resolved"], june["unresolved"]) == (8, 8, 0)


def test_a_closed_case_export_dated_under_jiean_riqi_is_read(tmp_path):
    """Shanghai's export of closed cases dates each one under 结案日期 (the day the case was
    closed), not 办结日期. The six complaints about X it closes as 调解成功 are read, not
    refused for the header, and X is trusted again."""
    w = CouncilWorld(tmp_path)
    x = complained_about(w, "SH", 6)
    key = w.upload("SH", "complaints", [
        {"投诉编号": f"SH-C{n}", "统一社会信用代码": x, "受理日期": f"2026-06-0{n}",
         "投诉类别": "质量", "处理状态": "调解成功", "结案日期": "2026-07-10"}
        for n in range(1, 7)], name="12315结案-7月.csv")
    w.ingest_accepted(key, 6)
    w.publish()
    assert (w.merchant(x)["unresolved_12m"], w.merchant(x)["verdict"]) == (0, "trusted")
