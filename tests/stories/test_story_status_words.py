"""A clerk writes a filing's end in her office's own word: 注销 (cancelled), 吊销 (revoked by the
regulator), 已退出 (left the programme), 终止 (terminated), or its pause as 停业 (closed for now)
or 中止. The template offers 撤销 and 暂停, but the row means the same, and a refusal would leave
the merchant trusted until someone noticed the receipt. Every such word ends or pauses the
filing; none of them can make a merchant trusted, so reading them is safe in the one direction
that matters to a consumer."""

from __future__ import annotations

import pytest
from council_world import CouncilWorld, filing, inspection, merchant_code

from registry.build.scores import DISQUALIFIER_SERIOUS_FAILURE

# 撤消 is the older spelling of 撤销, still in many offices' forms; 无效 and 已过期 say the
# filing no longer holds.
ENDED = ["注销", "已注销", "吊销", "已吊销", "已退出", "终止", "已终止", "已失效", "已取消",
         "撤消", "已撤消", "无效", "过期", "已过期"]
PAUSED = ["停业", "已停业", "中止", "已中止", "已暂停"]


@pytest.mark.parametrize("word", ["注销", "吊销"])
def test_a_filing_ended_in_another_word_is_not_trusted(tmp_path, word):
    """Jiangsu lists three merchants, then sends one row ending X's filing with ``word``.
    The row is accepted as a revocation and a consumer app no longer reads X as trusted."""
    w = CouncilWorld(tmp_path)
    x, y, z = w.three_listed("JS")
    key = w.upload("JS", "merchants", [filing("JS", "JS-1", x, Status=word)])
    w.ingest_accepted(key, 1)
    w.publish()
    assert w.merchant(x) is None
    assert {w.merchant(u)["verdict"] for u in (y, z)} == {"trusted"}


def test_every_word_for_an_ended_or_paused_filing_is_read_so(tmp_path):
    """Anhui's list uses every such word, one filing each, beside one active filing: each
    ended or paused filing's merchant is not trusted, and no row is refused."""
    w = CouncilWorld(tmp_path)
    words = ENDED + PAUSED
    codes = [merchant_code("AH", n) for n in range(1, len(words) + 2)]
    rows = [filing("AH", f"AH-{n}", code, Status=word)
            for n, (code, word) in enumerate(zip(codes, words, strict=False), start=1)]
    rows.append(filing("AH", f"AH-{len(codes)}", codes[-1]))
    key = w.upload("AH", "merchants", rows)
    receipt = w.receipt(w.ingest()[key])
    assert (receipt["accepted"], receipt["row_errors"]) == (len(rows), []), [
        (e["value"], e["code"]) for e in receipt["row_errors"]]
    w.publish()
    listed = w.merchants()
    assert all(code not in listed or listed[code]["trusted"] is False for code in codes[:-1])
    assert listed[codes[-1]]["verdict"] == "trusted"


def test_a_serious_failure_written_as_the_lab_words_it_disqualifies_the_merchant(tmp_path):
    """Anhui's lab reports X's milk powder as 不符合要求 (does not meet the requirements), its
    severity 严重不合格 (a serious nonconformity), the words of its own report, and Y's as
    不符合 with 一般不合格. Both rows are read as failures; X is disqualified for the serious
    one, Y is not."""
    w = CouncilWorld(tmp_path)
    x, y, z = w.three_listed("AH")
    key = w.upload("AH", "inspections", [
        inspection("AH-T-1", x, 检测结论="不符合要求", 严重程度="严重不合格"),
        inspection("AH-T-2", y, 检测结论="不符合", 严重程度="一般不合格"),
        inspection("AH-T-3", z, 检测结论="符合要求")])
    receipt = w.receipt(w.ingest()[key])
    assert (receipt["accepted"], receipt["row_errors"]) == (3, []), [
        (e["value"], e["code"]) for e in receipt["row_errors"]]
    w.publish()
    assert DISQUALIFIER_SERIOUS_FAILURE in w.merchant(x)["disqualifications"]
    assert w.merchant(x)["trusted"] is False
    assert (w.merchant(y)["failed_inspections_12m"], w.merchant(z)["failed_inspections_12m"]
            ) == (1, 0)
    assert DISQUALIFIER_SERIOUS_FAILURE not in w.merchant(y)["disqualifications"]


def test_a_status_with_a_note_in_brackets_still_ends_or_pauses_the_filing(tmp_path):
    """Jiangsu's clerk notes why, in brackets after the word: 撤销（违规经营）, 已注销(2026年11月),
    暂停【整改中】. Each row was refused, so X, Y and Z stayed trusted. A word that ends or pauses
    a filing is read with its note; a note never makes a filing active (guard: 有效（待复核） is
    still refused)."""
    w = CouncilWorld(tmp_path)
    listed = w.three_listed("JS")
    written = ["撤销（违规经营）", "已注销(2026年11月)", "暂停【整改中】"]
    key = w.upload("JS", "merchants", [
        *(filing("JS", f"JS-{n}", code, Status=word)
          for n, (code, word) in enumerate(zip(listed, written, strict=True), start=1)),
        filing("JS", "JS-9", merchant_code("JS", 9), Status="有效（待复核）")])
    receipt = w.receipt(w.ingest()[key])
    assert (receipt["accepted"], [(e["row"], e["column"], e["code"])
                                  for e in receipt["row_errors"]]) == (
        3, [(5, "status", "ENUM_INVALID")])
    w.publish()
    published = [w.merchant(code) for code in (*listed, merchant_code("JS", 9))]
    assert all(row is None or row["trusted"] is False for row in published), published


def test_a_failure_with_the_lab_note_in_brackets_disqualifies_the_merchant(tmp_path):
    """Anhui's lab writes 不合格（中文标签不符） with severity 严重（检出禁用成分）: the row was
    refused, and X stayed trusted. It is read as a serious failure: X is disqualified. A pass
    with a note (合格（复检）) is still refused: a note never reads as a pass."""
    w = CouncilWorld(tmp_path)
    x, y, _ = w.three_listed("AH")
    key = w.upload("AH", "inspections", [
        inspection("AH-T-1", x, 检测结论="不合格（中文标签不符）", 严重程度="严重（检出禁用成分）"),
        inspection("AH-T-2", y, 检测结论="合格（复检）")])
    receipt = w.receipt(w.ingest()[key])
    assert (receipt["accepted"], [(e["row"], e["column"], e["code"])
                                  for e in receipt["row_errors"]]) == (
        1, [(3, "result", "ENUM_INVALID")])
    w.publish()
    assert DISQUALIFIER_SERIOUS_FAILURE in w.merchant(x)["disqualifications"]
    assert w.merchant(y)["failed_inspections_12m"] == 0
