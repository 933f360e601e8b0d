"""A council's filing form asks each commitment as the programme words it: 是否支持七天无理由退货
(does the merchant support seven-day no-reason returns?), answered 支持 or 不支持; 是否承诺先行
赔付 (has it committed to compensate first?), answered 已承诺 or 未承诺; and a box ticked with ✔
(the check mark WPS and Excel insert) or crossed with ✘. Every such row was refused
(``BOOLEAN_INVALID``): a merchant withdrawing its commitments kept the points of its earlier
filing and stayed trusted, and a new merchant answering 支持 was not listed at all."""

from __future__ import annotations

from council_world import CouncilWorld, filing, merchant_code

COMMITMENTS = ("Chinese Label", "Traceable", "No Reason Return 7d", "Offline No Reason Return",
               "Advance Compensation")


def answered(*words: str) -> dict[str, str]:
    """The five commitment columns answered with ``words``, in the contract's order."""
    return dict(zip(COMMITMENTS, words, strict=True))


def test_commitments_withdrawn_in_the_forms_words_cost_their_points(tmp_path):
    """Zhejiang listed X with every commitment made (trusted, grade A). X then withdraws four of
    them, and the office's form says so: 可追溯 未承诺, 七天无理由退货 不支持, 线下无理由退货
    不支持, 先行赔付 未承诺. X keeps 10 of 40 compliance points, scores 60 and is listed with
    grade C, no longer trusted. Y, new, answers 支持, 已承诺 and ✔ throughout and is trusted."""
    w = CouncilWorld(tmp_path)
    x, _, _ = w.three_listed("ZJ")
    assert w.merchant(x)["verdict"] == "trusted"
    y = merchant_code("ZJ", 4)
    key = w.upload("ZJ", "merchants", [
        filing("ZJ", "ZJ-1", x, **answered("是", "未承诺", "不支持", "不支持", "未承诺")),
        filing("ZJ", "ZJ-4", y, **answered("✔", "已承诺", "支持", "支持", "已承诺"))])
    w.ingest_accepted(key, 2)
    w.publish()
    listed = w.merchant(x)
    assert (listed["traceable"], listed["no_reason_return_7d"],
            listed["advance_compensation"]) == (False, False, False)
    assert (listed["score_compliance"], listed["grade"], listed["verdict"]) == (10, "C", "listed")
    assert w.merchant(y)["score_compliance"] == 40
    assert w.merchant(y)["verdict"] == "trusted"


def test_a_cross_in_a_box_withdraws_a_commitment(tmp_path):
    """Anhui's form ticks or crosses boxes: X's new filing crosses 七天无理由退货 and 线下无理由
    退货 with ✘ and 先行赔付 with ☒. The commitments count as withdrawn."""
    w = CouncilWorld(tmp_path)
    x, _, _ = w.three_listed("AH")
    key = w.upload("AH", "merchants", [
        filing("AH", "AH-1", x, **answered("☑", "✔", "✘", "✘", "☒"))])
    w.ingest_accepted(key, 1)
    w.publish()
    listed = w.merchant(x)
    assert (listed["chinese_label"], listed["traceable"], listed["no_reason_return_7d"],
            listed["offline_no_reason_return"], listed["advance_compensation"]) == (
        True, True, False, False, False)
    assert listed["score_compliance"] == 20


FORM_QUESTIONS = ("是否有中文标签", "是否可追溯", "是否支持七天无理由退货",
                  "是否支持线下无理由退货", "是否承诺先行赔付")


def test_the_forms_questions_are_read_as_the_commitment_columns(tmp_path):
    """Zhejiang's form heads each commitment column with its question: 是否支持七天无理由退货,
    是否支持线下无理由退货, 是否承诺先行赔付 beside 是否有中文标签 and 是否可追溯. X answers 不支持
    to both returns questions. The file is read, not refused for its headers, and X loses the
    points of the commitments it no longer makes."""
    w = CouncilWorld(tmp_path)
    x, _, _ = w.three_listed("ZJ")
    row = {k: v for k, v in filing("ZJ", "ZJ-1", x).items() if k not in COMMITMENTS}
    row.update(zip(FORM_QUESTIONS, ("是", "是", "不支持", "不支持", "已承诺"), strict=True))
    key = w.upload("ZJ", "merchants", [row])
    w.ingest_accepted(key, 1)
    w.publish()
    listed = w.merchant(x)
    assert (listed["no_reason_return_7d"], listed["offline_no_reason_return"],
            listed["advance_compensation"]) == (False, False, True)
    assert listed["score_compliance"] == 25
