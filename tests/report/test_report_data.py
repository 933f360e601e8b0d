"""The report's numbers, from tiny frames and records (no storage)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from html import unescape

import polars as pl
from staged_rows import batch_record

from registry.config.contracts import load_contracts
from registry.config.published import load_published_contracts
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.ingest.rejections import ROW_MESSAGES
from registry.ledger import BatchRecord
from registry.quality.gates import gate_record_fields
from registry.quality.runner import CheckFailure, SuiteResult
from registry.report import (
    ReportData,
    complaint_category_labels,
    complaint_charts,
    complaints_by_region_and_category,
    complaints_by_region_and_month,
    complaints_headline,
    cross_region_merchants,
    days_to_resolve,
    file_name_shown,
    file_name_words,
    gift_rankings,
    headline_numbers,
    region_scorecards,
    relative_link,
    report_html,
    score_chart_spec,
    score_distribution,
    top_changes,
    trusted_by_region_and_grade,
    trusted_chart_spec,
)

REGIONS = load_regions(Settings(_env_file=None).config_dir)
FILE_WORDS = file_name_words(REGIONS, load_contracts(Settings(_env_file=None).schemas_dir))
PUBLISHED = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)


def merchants(*rows: tuple[str, str, list[str], float, str | None, bool]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"uscc": pl.String, "name": pl.String, "regions": pl.List(pl.String),
                      "score": pl.Float64, "grade": pl.String, "trusted": pl.Boolean},
        orient="row",
    )


def changes(*rows: tuple) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"uscc": pl.String, "change": pl.String, "fields_changed": pl.List(pl.String),
                "grade_before": pl.String, "grade_after": pl.String,
                "score_before": pl.Float64, "score_after": pl.Float64,
                "trusted_before": pl.Boolean, "trusted_after": pl.Boolean},
        orient="row",
    )


LISTED = merchants(
    ("U1", "甲公司", ["SH", "JS"], 90.0, "A", True),
    ("U2", "乙公司", ["SH"], 75.0, "B", True),
    ("U3", "丙公司", ["ZJ"], 100.0, "A", False),  # disqualified
    ("U4", "丁公司", ["AH"], 40.0, None, False),
)
DELTA = changes(
    ("U1", "updated", ["score"], "B", "A", 80.0, 90.0, True, True),
    ("U3", "updated", ["disqualifications"], "A", "A", 100.0, 100.0, True, False),
    ("U4", "added", [], None, None, None, 40.0, None, False),
    ("U9", "removed", [], "B", None, 72.0, None, True, None),
    ("U8", "removed", [], "C", None, 61.0, None, False, None),
)


def test_headline_counts_and_changes_come_from_the_snapshot_itself():
    assert headline_numbers(LISTED, DELTA) == {
        "merchants": 4, "trusted": 2,
        "merchants_change": -1,  # one added, two removed
        "trusted_change": -2,  # U3 lost trust, U9 (trusted) was removed
        "added": 1, "removed": 2, "updated": 2,
    }


def test_trusted_counts_a_merchant_in_every_region_and_shows_every_region():
    frame = trusted_by_region_and_grade(LISTED, list(REGIONS.regions))
    counts = {(r["region"], r["grade"]): r["merchants"] for r in frame.to_dicts()}
    assert counts[("SH", "A")] == 1 and counts[("SH", "B")] == 1
    assert counts[("JS", "A")] == 1
    # The disqualified grade-A merchant in ZJ is not trusted; AH has none: both still shown.
    assert counts[("ZJ", "A")] == 0 and counts[("AH", "A")] == 0 and counts[("AH", "B")] == 0
    assert frame.get_column("region").unique(maintain_order=True).to_list() == [
        "SH", "JS", "ZJ", "AH"]


def test_score_distribution_bins_include_100_and_ungraded_merchants():
    rows = score_distribution(LISTED).to_dicts()
    assert {"score_from": 90, "score_to": 100, "grade": "A", "merchants": 2} in rows
    assert {"score_from": 70, "score_to": 80, "grade": "B", "merchants": 1} in rows
    assert {"score_from": 40, "score_to": 50, "grade": "none", "merchants": 1} in rows
    assert sum(r["merchants"] for r in rows) == LISTED.height


def test_top_changes_put_trust_flips_first_and_name_removed_merchants():
    names = pl.concat([LISTED.select("uscc", "name"),
                       pl.DataFrame({"uscc": ["U9", "U8"], "name": ["旧公司", "老公司"]})])
    top = top_changes(DELTA, names, limit=5)
    # Flips (a trusted merchant removed, one disqualified), then removals, additions, updates.
    assert top.get_column("uscc").to_list() == ["U9", "U3", "U8", "U4", "U1"]
    assert top.row(0, named=True)["name"] == "旧公司"
    assert top.row(4, named=True)["score_delta"] == 10.0
    assert top.row(3, named=True)["score_delta"] is None
    assert top_changes(DELTA, names, limit=2).height == 2
    assert top.row(1, named=True)["fields"] == "disqualifications"


def record(batch_id: str, region: str, *, status: str = "released", **extra) -> BatchRecord:
    """A committed batch of 10 rows (2 quarantined), committed the day before publication."""
    base = {"rows_in": 10, "accepted": 8, "quarantined": 2,
            "error_counts": {"USCC_INVALID": 2}, "created_at": datetime(2026, 11, 29, tzinfo=UTC)}
    return batch_record(batch_id, region=region, status=status).model_copy(
        update={**base, **extra})


def test_scorecards_sum_batches_rank_failing_checks_and_list_held_batches():
    cards = {c["code"]: c for c in region_scorecards(
        [
            record("B1", "SH"),
            record("B2", "SH", rows_in=30, accepted=30, quarantined=0,
                   error_counts={"DATE_INVALID": 2, "ENUM_INVALID": 1, "CITY_UNKNOWN": 5}),
            record("B3", "SH", status="held", held_reasons=["row_count_below_floor"],
                   rows_in=0, accepted=0, quarantined=0, error_counts={}),
            # released after a hold: published, so not held any more
            record("B4", "JS", status="held", held_reasons=["x"]),
            # committed after the snapshot was published: belongs to the next one
            record("B5", "JS", created_at=datetime(2026, 12, 1, tzinfo=UTC), rows_in=99),
        ],
        REGIONS, input_batches=["B1", "B2", "B4"], published_at=PUBLISHED,
    )}
    sh = cards["SH"]
    assert (sh["batches"], sh["rows_in"], sh["accepted"], sh["quarantined"]) == (3, 40, 38, 2)
    assert sh["accepted_pct"] == 95.0
    assert [(c["code"], c["count"]) for c in sh["top_checks"]] == [
        ("CITY_UNKNOWN", 5), ("DATE_INVALID", 2), ("USCC_INVALID", 2)]
    assert [(b["batch_id"], b["dataset"], [r["code"] for r in b["reasons"]])
            for b in sh["held"]] == [("B3", "merchants", ["row_count_below_floor"])]
    assert cards["JS"]["held"] == [] and cards["JS"]["rows_in"] == 10
    # A council that sent nothing still has a card, with no percentage to show.
    assert cards["AH"]["batches"] == 0 and cards["AH"]["accepted_pct"] is None
    assert (cards["SH"]["name_zh"], cards["SH"]["name_en"]) == ("上海市", "Shanghai")


def test_failing_checks_read_as_reasons_in_chinese_and_english_from_the_catalogue():
    (sh,) = [c for c in region_scorecards([record("B1", "SH")], REGIONS, ["B1"], PUBLISHED)
             if c["code"] == "SH"]
    (check,) = sh["top_checks"]
    assert (check["code"], check["count"]) == ("USCC_INVALID", 2)
    # The clerk's message with the file, row, column and value left out.
    zh, en = ROW_MESSAGES["USCC_INVALID"]
    assert check["reason_zh"] == zh.replace("{column}", "…").replace("{value}", "…")
    assert check["reason_en"] == en.replace("{column}", "…").replace("{value}", "…")
    assert "不是有效的统一社会信用代码" in check["reason_zh"] and "{" not in check["reason_zh"]
    page = report_html(page_data(scorecards=[sh]), runtime="")
    item = re.search(r'<ul class="checks"><li>(.*?)</li>', page).group(1)
    # Words first, the code after them.
    assert item.index("不是有效的统一社会信用代码") < item.index("× 2") < item.index("USCC_INVALID")


def held_record(batch_id: str, region: str, file: str | None) -> BatchRecord:
    """A batch the gate held for too few rows, as the gate records it."""
    failure = CheckFailure("batch_row_count", "expect_table_row_count_to_be_between", None, 0,
                           "批次接收 0 行，不在允许范围 1–∞ 行内", "The batch has 0 accepted rows")
    result = SuiteResult("staged_merchants", "1", success=False, evaluated=5, passed=4, rows=0,
                         failures=(failure,))
    return record(batch_id, region, rows_in=1, accepted=0, quarantined=1, file=file,
                  **gate_record_fields(result))


def test_held_batches_show_the_gates_reasons_and_the_file_name_masked():
    cards = {c["code"]: c for c in region_scorecards(
        [held_record("B1", "JS", "张三提交_merchants_江苏.xlsx"),
         record("B2", "JS", status="held", held_reasons=["batch_row_count"])],
        REGIONS, [], PUBLISHED, file_words=FILE_WORDS)}
    with_words, without = cards["JS"]["held"]
    assert with_words["file"] == "***_merchants_江苏.xlsx"
    assert with_words["reasons"] == [{"code": "batch_row_count",
                                      "message_zh": "批次接收 0 行，不在允许范围 1–∞ 行内",
                                      "message_en": "The batch has 0 accepted rows"}]
    # A record without the gate's words (or its file name) still shows its code.
    assert without["file"] is None
    assert without["reasons"] == [{"code": "batch_row_count", "message_zh": None,
                                   "message_en": None}]
    page = report_html(page_data(scorecards=list(cards.values())), runtime="")
    assert "***_merchants_江苏.xlsx" in page and "张三" not in page
    assert "批次接收 0 行" in page and "The batch has 0 accepted rows" in page


def test_file_names_keep_only_the_registrys_own_words():
    shown = {name: file_name_shown(name, FILE_WORDS) for name in (
        "张三提交_merchants.xlsx", "上海市经营者备案2025.xlsx", "上海张三.csv",
        "zhangsan_complaints_SH.csv", "李四 13912345678.xlsx", "merchants_js_bom.csv")}
    assert shown == {
        "张三提交_merchants.xlsx": "***_merchants.xlsx",
        "上海市经营者备案2025.xlsx": "上海市经营者备案2025.xlsx",
        "上海张三.csv": "上海***.csv",
        "zhangsan_complaints_SH.csv": "***_complaints_SH.csv",  # a name in pinyin, too
        "李四 13912345678.xlsx": "*** 139****5678.xlsx",
        "merchants_js_bom.csv": "merchants_js_***.csv",
    }


def test_gift_rankings_keep_the_top_of_each_category_newest_round_first():
    products = pl.DataFrame({
        "evaluation_round": ["2025", "2025", "2025", "2026"],
        "category": ["tea", "tea", "tea", "tea"],
        "rank_in_category": [1, 2, 3, 1],
        "product_name": ["A", "B", "C", "D"],
        "region": ["ZJ"] * 4, "product_id": ["P1", "P2", "P3", "P4"],
        "origin_city": ["杭州"] * 4, "overall": [9.0, 8.0, 7.0, 9.5],
        "quality": [9.0] * 4, "culture": [9.0] * 4, "packaging": [9.0] * 4,
        "value": [9.0] * 4, "evaluators": [5] * 4,
    })
    assert gift_rankings(products, per_category=2).get_column("product_name").to_list() == [
        "D", "A", "B"]


def test_relative_links_climb_out_of_the_report_folder():
    assert relative_link("reports/S1/index.html", "registry/snapshots/S1/_manifest.json") == (
        "../../registry/snapshots/S1/_manifest.json")
    assert relative_link("reports/S1/index.html", "reports/S1/data_docs/index.html") == (
        "data_docs/index.html")


NO_GIFTS = pl.DataFrame(schema={
    "evaluation_round": pl.String, "category": pl.String, "rank_in_category": pl.Int64,
    "product_name": pl.String, "region": pl.String, "product_id": pl.String,
    "origin_city": pl.String, "overall": pl.Float64, "quality": pl.Float64,
    "culture": pl.Float64, "packaging": pl.Float64, "value": pl.Float64, "evaluators": pl.Int64})


def page_data(**fields) -> ReportData:
    """The report of LISTED and DELTA, with ``fields`` replaced."""
    trusted, scores = trusted_by_region_and_grade(LISTED, ["SH"]), score_distribution(LISTED)
    base = dict(
        snapshot_id="S1", as_of="2026-11-30", published_at="now", previous_snapshot=None,
        code_version="0", score_model_version=1, headline=headline_numbers(LISTED, DELTA),
        regions=[], trusted=trusted, scores=scores, changes=top_changes(DELTA, LISTED),
        scorecards=[], gifts=gift_rankings(NO_GIFTS), manifest_link="m.json",
        charts={"trusted": trusted_chart_spec(trusted, {}), "scores": score_chart_spec(scores)})
    return ReportData(**{**base, **fields})


def test_changes_read_in_chinese_words_from_the_changes_contract():
    published = load_published_contracts()
    kinds = {v.value: v for v in next(c for c in published["changes"].columns
                                       if c.name == "change").values}
    assert kinds["added"].description_zh.startswith("新增：")  # the contract's own words
    from registry.report.writer import _change_words

    change_labels, field_labels = _change_words()
    assert change_labels == {"added": "新增 added", "removed": "移除 removed",
                             "updated": "更新 updated"}
    top = top_changes(DELTA, LISTED, change_labels=change_labels, field_labels=field_labels)
    by_uscc = {row["uscc"]: row for row in top.to_dicts()}
    assert by_uscc["U4"]["change_label"] == "新增 added"
    assert by_uscc["U1"]["fields"] == f"{field_labels['score']}"
    assert field_labels["score"].endswith(" score") and field_labels["score"] != "score score"
    page = report_html(page_data(changes=top), runtime="")
    section = page.split('id="changes"')[1].split("</section>")[0]
    assert "新增 added" in section and "移除 removed" in section and "更新 updated" in section


def test_legends_list_only_the_grades_and_categories_that_occur():
    only_a = merchants(("U1", "甲", ["SH"], 90.0, "A", True), ("U2", "乙", ["JS"], 50.0, None,
                                                             False))
    trusted = trusted_chart_spec(trusted_by_region_and_grade(only_a, ["SH", "JS"]),
                                 {"SH": "上海", "JS": "江苏"})
    assert trusted["encoding"]["color"]["scale"] == {"domain": ["A"], "range": ["#1b7837"]}
    # Every region is still on the axis, one with no trusted merchant included.
    assert trusted["encoding"]["x"]["scale"]["domain"] == ["上海", "江苏"]
    scores = score_chart_spec(score_distribution(only_a))
    assert scores["encoding"]["color"]["scale"] == {"domain": ["A", "none"],
                                                    "range": ["#1b7837", "#bababa"]}
    charts = complaint_charts(COMPLAINTS, REGION_LABELS, CATEGORY_LABELS)
    categories = charts["complaints_categories"]["encoding"]["color"]["scale"]["domain"]
    assert categories == ["商品质量 quality", "售后服务 after sales", "价格问题 price",
                          "其他 other"]
    days = charts["complaints_days"]["encoding"]["color"]["scale"]["domain"]
    assert days == ["上海市 Shanghai", "安徽省 Anhui"]  # the regions with a resolved complaint


def test_council_text_is_escaped_in_the_page_and_in_chart_data():
    hostile = "<script>alert(1)</script>"
    listed = merchants(("U1", hostile, ["SH"], 90.0, "A", True))
    delta = changes(("U1", "added", [], None, "A", None, 90.0, None, True))
    trusted = trusted_by_region_and_grade(listed, ["SH"])
    scores = score_distribution(listed)
    data = ReportData(
        snapshot_id="S1", as_of=date(2026, 11, 30).isoformat(), published_at="now",
        previous_snapshot=None, code_version="0", score_model_version=1,
        headline=headline_numbers(listed, delta),
        regions=[{"code": "SH", "name_zh": "上海市", "name_en": "Shanghai"}],
        trusted=trusted, scores=scores, changes=top_changes(delta, listed),
        scorecards=region_scorecards([], REGIONS, [], PUBLISHED),
        gifts=gift_rankings(pl.DataFrame(schema={
            "evaluation_round": pl.String, "category": pl.String, "rank_in_category": pl.Int64,
            "product_name": pl.String, "region": pl.String, "product_id": pl.String,
            "origin_city": pl.String, "overall": pl.Float64, "quality": pl.Float64,
            "culture": pl.Float64, "packaging": pl.Float64, "value": pl.Float64,
            "evaluators": pl.Int64})),
        manifest_link="../../m.json",
        charts={"trusted": trusted_chart_spec(trusted, {"SH": hostile}),
                "scores": score_chart_spec(scores)},
    )
    page = report_html(data, runtime="/* runtime */")
    assert hostile not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # In the chart's JSON the region label is there, but cannot close the <script> element.
    assert "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in page


def test_count_axes_tick_whole_merchants():
    trusted = trusted_by_region_and_grade(LISTED, ["SH", "JS"])
    axis = trusted_chart_spec(trusted, {"SH": "上海市 Shanghai"})["encoding"]["y"]["axis"]
    assert axis["values"] == [0, 1, 2]  # SH has two trusted merchants: no 0.5 ticks
    scores = score_distribution(LISTED)
    assert score_chart_spec(scores)["encoding"]["y"]["axis"]["values"] == [0, 1, 2]


# The joint complaint analysis


def summary(*rows: tuple) -> pl.DataFrame:
    """complaints_summary rows: region, category, month, received, resolved, median days,
    recovered, merchants named, of which named in other regions."""
    frame = pl.DataFrame(
        rows, orient="row",
        schema={"region": pl.String, "category": pl.String, "month": pl.Date,
                "received": pl.Int64, "resolved": pl.Int64,
                "median_days_to_resolve": pl.Float64, "recovered_amount_cny": pl.Float64,
                "merchants_named": pl.Int64, "merchants_named_in_other_regions": pl.Int64},
    )
    return frame.with_columns((pl.col("received") - pl.col("resolved")).alias("unresolved"))


JUNE, JULY = date(2026, 6, 1), date(2026, 7, 1)
COMPLAINTS = summary(
    ("SH", "quality", JUNE, 3, 2, 4.0, 100.1, 2, 1),
    ("SH", "price", JUNE, 1, 0, None, 0.0, 1, 1),
    ("SH", "quality", JULY, 1, 1, 9.0, 0.2, 1, 0),
    ("AH", "after_sales", JULY, 2, 1, 12.5, 50.0, 2, 1),
    ("JS", "other", JUNE, 1, 0, None, 0.0, 1, 0),
)
REGION_LABELS = {c: f"{r.name_zh} {r.name_en}" for c, r in REGIONS.regions.items()}
_CATEGORY = next(c for c in load_published_contracts()["complaints_summary"].columns
                 if c.name == "category")
CATEGORY_LABELS = complaint_category_labels({v.value: [v.description_zh]
                                             for v in _CATEGORY.values})


def test_complaint_categories_are_labelled_in_words_from_the_contract():
    assert CATEGORY_LABELS == {
        "quality": "商品质量 quality", "safety": "安全问题 safety",
        "after_sales": "售后服务 after sales", "false_advertising": "虚假宣传 false advertising",
        "contract": "合同纠纷 contract", "price": "价格问题 price", "other": "其他 other",
    }


def test_complaint_totals_add_up_the_window():
    assert complaints_headline(COMPLAINTS) == {
        "received": 8, "resolved": 4, "unresolved": 4, "recovered_amount_cny": 150.3}
    assert complaints_headline(COMPLAINTS.clear())["received"] == 0


def test_received_and_resolved_per_region_and_month_in_region_order():
    frame = complaints_by_region_and_month(COMPLAINTS, list(REGIONS.regions))
    assert frame.rows() == [("SH", "2026-06", 4, 2), ("SH", "2026-07", 1, 1),
                            ("JS", "2026-06", 1, 0), ("AH", "2026-07", 2, 1)]


def test_categories_and_amounts_per_region_in_contract_order():
    frame = complaints_by_region_and_category(COMPLAINTS, list(REGIONS.regions),
                                              list(CATEGORY_LABELS))
    assert frame.select("region", "category", "received", "recovered_amount_cny").rows() == [
        ("SH", "quality", 4, 100.3), ("SH", "price", 1, 0.0), ("JS", "other", 1, 0.0),
        ("AH", "after_sales", 2, 50.0)]


def test_medians_are_shown_per_published_row_never_added_up():
    frame = days_to_resolve(COMPLAINTS, list(REGIONS.regions))
    assert frame.select("region", "month", "median_days_to_resolve").rows() == [
        ("SH", "2026-06", 4.0), ("SH", "2026-07", 9.0), ("AH", "2026-07", 12.5)]


def test_merchants_named_in_other_regions_per_region_and_month():
    frame = cross_region_merchants(COMPLAINTS, list(REGIONS.regions))
    assert frame.rows() == [("SH", "2026-06", 2, 3), ("SH", "2026-07", 0, 1),
                            ("JS", "2026-06", 0, 1), ("AH", "2026-07", 1, 2)]


def test_complaint_charts_use_words_not_codes_and_whole_counts():
    charts = complaint_charts(COMPLAINTS, REGION_LABELS, CATEGORY_LABELS)
    assert list(charts) == ["complaints_monthly", "complaints_categories", "complaints_days",
                            "complaints_recovered", "complaints_cross_region"]
    text = json.dumps(charts, ensure_ascii=False)
    for words in ("受理 received", "办结 resolved", "售后服务 after sales", "上海市 Shanghai",
                  "安徽省 Anhui", "Median days to resolve",
                  "Merchants named in more than one region", "Recovered (CNY)"):
        assert words in text, words
    values = [v for d in charts["complaints_categories"]["datasets"].values() for v in d]
    assert {v["category_label"] for v in values} == {
        "商品质量 quality", "价格问题 price", "其他 other", "售后服务 after sales"}
    assert charts["complaints_categories"]["encoding"]["y"]["axis"]["values"] == [0, 1, 2, 3,
                                                                                 4, 5]
    assert charts["complaints_cross_region"]["encoding"]["y"]["axis"]["values"] == [0, 1, 2]
    assert complaint_charts(COMPLAINTS.clear(), REGION_LABELS, CATEGORY_LABELS) == {}


def report_with_complaints(complaints: pl.DataFrame | None) -> str:
    empty = merchants()
    data = ReportData(
        snapshot_id="S1", as_of="2026-11-30", published_at="now", previous_snapshot=None,
        code_version="0", score_model_version=1, headline=headline_numbers(empty, changes()),
        regions=[], trusted=trusted_by_region_and_grade(empty, ["SH"]),
        scores=score_distribution(empty), changes=top_changes(changes(), empty),
        scorecards=[], gifts=pl.DataFrame(), manifest_link="m.json",
        charts={"trusted": {}, "scores": {}, **(
            {} if complaints is None
            else complaint_charts(complaints, REGION_LABELS, CATEGORY_LABELS))},
        complaints=None if complaints is None else complaints_headline(complaints),
    )
    return report_html(data, runtime="/* runtime */")


def section(page: str) -> str:
    html = page.split('<section id="complaints">')[1].split("</section>")[0]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_the_page_shows_the_complaint_section_with_its_charts():
    page = report_with_complaints(COMPLAINTS)
    text = section(page)
    assert "投诉联合分析 Joint complaint analysis" in text
    assert "受理投诉 Complaints received 8 已办结 resolved 4 · 未办结 unresolved 4" in text
    assert "挽回经济损失（元） Recovered for consumers (CNY) 150.30" in text
    for name in ("complaints_monthly", "complaints_categories", "complaints_days",
                 "complaints_recovered", "complaints_cross_region"):
        assert f'data-chart="{name}"' in page and f'id="spec-{name}"' in page


def test_the_page_says_when_there_is_no_complaint_or_no_analysis_yet():
    assert "No council received a complaint in the score model's window." in section(
        report_with_complaints(COMPLAINTS.clear()))
    older = report_with_complaints(None)
    assert "published before the joint complaint analysis existed" in section(older)
    assert 'data-chart="complaints_monthly"' not in older
