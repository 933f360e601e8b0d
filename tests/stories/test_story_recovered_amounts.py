"""A case system writes the money recovered for a consumer as money is written: with 元 or ¥
after or before it, in 万元, or as 无 when there was none. What a consumer app then reads of
the merchant and in the joint complaint analysis (docs/stories.md, "Money recovered, as it is
written")."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest
from council_world import CouncilWorld, csv_bytes
from staged_rows import PROJECT_ROOT

from registry.build.scores import DISQUALIFIER_UNRESOLVED
from registry.config.contracts import load_vocabulary
from registry.ingest.normalize import cleaned_text, money_from_text

JUNE = date(2026, 6, 1)
# How the 12315 exports write the amount recovered for each of eight settled cases, and what
# it is in yuan.
AMOUNTS = [("1,200.50元", 1200.5), ("¥300", 300.0), ("￥ 80.00", 80.0), ("200 元", 200.0),
           ("0.5万元", 5000.0), ("RMB 45", 45.0), ("无", 0.0), ("0元", 0.0)]


def test_settlements_with_money_written_as_money_close_the_complaints(tmp_path):
    """Anhui sent eight complaints about X as 处理中: X is disqualified, more than five open.
    The office mediates every one, and the next export lists them 已办结 with the money
    recovered for each consumer under 挽回经济损失(元), written as its clerks write money:
    1,200.50元, ¥300, ￥ 80.00, 200 元, 0.5万元, RMB 45, and 无 or 0元 where nothing was
    owed. Before, each row was refused for its amount alone, so the eight complaints stayed
    open and X stayed disqualified for complaints it had settled; the joint analysis
    recovered nothing. Now each amount is read in yuan: X is trusted, and the analysis
    counts 6,825.50 yuan recovered in June."""
    w = CouncilWorld(tmp_path)
    x, _, _ = w.three_listed("AH")
    w.upload("AH", "complaints", _export(x, [(n, "处理中", "", "") for n in range(1, 9)]),
             name="12315导出-6月.csv")
    w.ingest()
    w.publish()
    assert DISQUALIFIER_UNRESOLVED in w.merchant(x)["disqualifications"]

    settled = [(n, "已办结", "2026-07-10", written)
               for n, (written, _) in enumerate(AMOUNTS, start=1)]
    key = w.upload("AH", "complaints", _export(x, settled), name="12315导出-7月.csv")
    w.ingest_accepted(key, 8)
    w.publish()
    listed = w.merchant(x)
    assert (listed["complaints_12m"], listed["unresolved_12m"]) == (8, 0)
    assert listed["verdict"] == "trusted"
    june = w.complaints_summary()[("AH", "quality", JUNE)]
    assert (june["resolved"], june["recovered_amount_cny"]) == (8, pytest.approx(6825.5))


def test_an_amount_that_is_not_money_is_still_refused_with_its_reason(tmp_path):
    """Guard: 待定 (to be decided) or 约200 (about 200) are no amount, and 200美元 is not in
    yuan: each row is refused with the column and its value named, the others read."""
    w = CouncilWorld(tmp_path)
    x, _, _ = w.three_listed("AH")
    rows = [(1, "已办结", "2026-07-10", "待定"), (2, "已办结", "2026-07-10", "约200"),
            (3, "已办结", "2026-07-10", "200美元"), (4, "已办结", "2026-07-10", "200元")]
    key = w.upload("AH", "complaints", _export(x, rows), name="12315导出-7月.csv")
    receipt = w.receipt(w.ingest()[key])
    assert sorted((e["column"], e["value"], e["code"]) for e in receipt["row_errors"]) == [
        ("recovered_amount_cny", value, "NUMBER_INVALID") for value in ("200美元", "待定", "约200")]
    assert receipt["accepted"] == 1


@pytest.mark.parametrize(("written", "yuan"), [
    *AMOUNTS, ("1,000", 1000.0), ("12.5", 12.5), ("CNY1,000.00", 1000.0), ("1.2万", 12000.0),
    ("人民币500元", 500.0), ("200美元", None), ("约200", None), ("200-300元", None),
    ("1,20元", None), ("万元", None), ("待定", None)])
def test_money_is_read_in_yuan(written: str, yuan: float | None):
    text = cleaned_text(pl.Series([written]))
    cny = load_vocabulary(PROJECT_ROOT / "schemas").currencies["CNY"]
    read = pl.select(money_from_text(pl.lit(text), cny)).item()
    assert read == (None if yuan is None else pytest.approx(yuan))


def _export(uscc: str, rows: list[tuple[int, str, str, str]]) -> bytes:
    """Anhui's 12315 export: (case number, status, closed on, recovered) of complaints about
    ``uscc`` received in June."""
    return csv_bytes([{"投诉编号": f"AH-C{n}", "统一社会信用代码": uscc,
                       "受理日期": f"2026-06-0{n}", "投诉类别": "质量", "处理状态": status,
                       "办结日期": closed, "挽回经济损失(元)": recovered}
                      for n, status, closed, recovered in rows])
