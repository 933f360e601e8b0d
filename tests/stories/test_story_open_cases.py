"""A case system names an open complaint by the step it is at: 已受理 (accepted), 受理中,
调解中 (in mediation), 待处理 (waiting), 已转办 (forwarded to the office in charge), 待办理; and
a clerk adds what happened so far after the status, 处理中（已联系商家） or 未解决：商家拒绝退款.
Every such row was refused (``ENUM_INVALID``), so the open complaints counted nowhere and a
merchant with six of them stayed trusted. Each is read as the complaint it is: still being
handled, or unresolved. None can close a complaint, so reading them is safe in the one
direction that matters to a consumer."""

from __future__ import annotations

from council_world import CouncilWorld, complaint

from registry.build.scores import DISQUALIFIER_UNRESOLVED

OPEN_STEPS = ["已受理", "受理中", "调解中", "待处理", "已转办", "待办理"]


def test_open_cases_in_the_case_systems_words_disqualify_the_merchant(tmp_path):
    """Zhejiang's export lists six complaints about X, each open at another step: X has six
    open complaints and is disqualified."""
    w = CouncilWorld(tmp_path)
    x, y, _ = w.three_listed("ZJ")
    key = w.upload("ZJ", "complaints", [
        complaint(f"ZJ-C-{n}", x, Status=step) for n, step in enumerate(OPEN_STEPS, start=1)])
    w.ingest_accepted(key, 6)
    w.publish()
    assert (w.merchant(x)["complaints_12m"], w.merchant(x)["unresolved_12m"]) == (6, 6)
    assert DISQUALIFIER_UNRESOLVED in w.merchant(x)["disqualifications"]
    assert w.merchant(x)["verdict"] == "disqualified"
    assert w.merchant(y)["verdict"] == "trusted"


def test_an_open_status_with_a_note_is_read_and_a_closed_one_is_not(tmp_path):
    """Shanghai's clerk adds what happened so far: 处理中（已联系商家）, 未解决：商家拒绝退款,
    调解中，等待商家答复 are open complaints about X. 已解决（部分退款） beside them is refused: a
    note never closes a complaint."""
    w = CouncilWorld(tmp_path)
    x, _, _ = w.three_listed("SH")
    key = w.upload("SH", "complaints", [
        complaint("SH-C-1", x, Status="处理中（已联系商家）"),
        complaint("SH-C-2", x, Status="未解决：商家拒绝退款"),
        complaint("SH-C-3", x, Status="调解中，等待商家答复"),
        complaint("SH-C-4", x, Status="已解决（部分退款）", **{"Resolved On": "2026-06-20"})])
    receipt = w.receipt(w.ingest()[key])
    assert (receipt["accepted"], [(e["row"], e["column"], e["code"])
                                  for e in receipt["row_errors"]]) == (
        3, [(5, "status", "ENUM_INVALID")])
    w.publish()
    assert (w.merchant(x)["complaints_12m"], w.merchant(x)["unresolved_12m"]) == (3, 3)
