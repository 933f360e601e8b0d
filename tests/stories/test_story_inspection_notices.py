"""A council forwards the market regulator's sampling notice (抽检通报) as its inspections
upload. The notice words each conclusion as the lab did: 检验不合格 or 判定不合格 (found to
fail), 不符合标准 (does not meet the standard), 检验合格, and a failure with what failed after a
colon or a comma, 不合格：菌落总数超标. Each such failure was refused (``ENUM_INVALID``), so the
merchant's failure counted nowhere and it stayed trusted. A failure is read in every such
wording; a pass only in words that say nothing else, and never with a note after it."""

from __future__ import annotations

from council_world import CouncilWorld, inspection

from registry.build.scores import DISQUALIFIER_SERIOUS_FAILURE


def test_a_notice_worded_by_the_lab_counts_every_failure(tmp_path):
    """Jiangsu's notice: X's sample 不合格：菌落总数超标 with severity 严重：检出禁用成分, Y's
    检验不合格 and 不符合标准 (two samples, 一般), Z's 检验合格 and 判定合格. X is disqualified for
    the serious failure, Y has two failures in two inspections (no quality points), Z two
    passes."""
    w = CouncilWorld(tmp_path)
    x, y, z = w.three_listed("JS")
    key = w.upload("JS", "inspections", [
        inspection("JS-T-1", x, 检测结论="不合格：菌落总数超标", 严重程度="严重：检出禁用成分"),
        inspection("JS-T-2", y, 检测结论="检验不合格", 严重程度="一般"),
        inspection("JS-T-3", y, 检测结论="不符合标准", 严重程度="一般，标签不规范"),
        inspection("JS-T-4", z, 检测结论="检验合格"),
        inspection("JS-T-5", z, 检测结论="判定合格")])
    w.ingest_accepted(key, 5)
    w.publish()
    assert DISQUALIFIER_SERIOUS_FAILURE in w.merchant(x)["disqualifications"]
    assert w.merchant(x)["verdict"] == "disqualified"
    assert (w.merchant(y)["inspections_12m"], w.merchant(y)["failed_inspections_12m"]) == (2, 2)
    assert w.merchant(y)["score_quality"] == 0
    assert (w.merchant(z)["inspections_12m"], w.merchant(z)["failed_inspections_12m"]) == (2, 0)
    assert w.merchant(z)["verdict"] == "trusted"


def test_a_note_after_a_pass_is_still_refused(tmp_path):
    """Anhui writes 合格：复检 and 合格，待复核 (a pass pending a re-test): a note never reads as
    a pass, so both rows are refused and say why; 不合格、标签不符 beside them is a failure."""
    w = CouncilWorld(tmp_path)
    x, y, _ = w.three_listed("AH")
    key = w.upload("AH", "inspections", [
        inspection("AH-T-1", x, 检测结论="合格：复检"),
        inspection("AH-T-2", x, 检测结论="合格，待复核"),
        inspection("AH-T-3", y, 检测结论="不合格、标签不符", 严重程度="一般")])
    receipt = w.receipt(w.ingest()[key])
    assert (receipt["accepted"], [(e["row"], e["column"], e["code"])
                                  for e in receipt["row_errors"]]) == (
        1, [(2, "result", "ENUM_INVALID"), (3, "result", "ENUM_INVALID")])
    w.publish()
    assert w.merchant(x)["inspections_12m"] == 0
    assert (w.merchant(y)["inspections_12m"], w.merchant(y)["failed_inspections_12m"]) == (1, 1)


def test_a_notice_under_its_own_headers_is_read(tmp_path):
    """The regulator's notice heads its columns 检验报告编号, 检验日期 and 检验结论, where the
    template says 检测编号, 检测日期 and 检测结论. Shanghai forwards it as it is, with the
    severity its staff added: X's sample failed seriously. The file is read, not refused for its
    headers, and X is disqualified."""
    w = CouncilWorld(tmp_path)
    x, _, _ = w.three_listed("SH")
    key = w.upload("SH", "inspections", [{
        "检验报告编号": "SH-T-1", "统一社会信用代码": x, "样品名称": "进口奶粉",
        "检验日期": "2026-06-01", "检验结论": "不合格", "不合格项目": "菌落总数",
        "严重程度": "严重"}])
    w.ingest_accepted(key, 1)
    w.publish()
    assert w.merchant(x)["verdict"] == "disqualified"
