"""The report's data and chart specs, computed from snapshot frames and batch records. Pure:
no storage, no settings."""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import altair as alt
import polars as pl

from registry.config.contracts import Contract
from registry.config.pii import masked
from registry.config.regions import RegionConfig
from registry.ingest.rejections import ROW_MESSAGES
from registry.ledger.records import BatchRecord

TOP_CHANGES = 20
TOP_CHECKS = 3
GIFTS_PER_CATEGORY = 5
SCORE_BIN_WIDTH = 10


# Grades in display order; "none" is a merchant scored below C (listed, but not graded).
GRADES = ("A", "B", "C", "none")
GRADE_COLOURS = ("#1b7837", "#5aae61", "#f4a582", "#bababa")
_CHANGE_ORDER = {"removed": 0, "added": 1, "updated": 2}
# A placeholder of a row-error message ("「{column}」的值「{value}」…") and what stands in for
# it when the message speaks of every row with the code at once.
_PLACEHOLDER = re.compile(r"\{\w+\}")
_ANY = "…"
# A file name's words: Latin letters, or Chinese characters (CJK unified ideographs).
_WORD = re.compile(r"[A-Za-z]+|[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_LATIN = re.compile(r"[A-Za-z]+")
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")
_MASK = "***"


def check_reason(code: str) -> tuple[str, str] | None:
    """A row quarantine code's reason in Chinese and English, from the rejection catalogue
    (:data:`registry.ingest.rejections.ROW_MESSAGES`, the one owner of the words): its message
    with the file, row, column and value left out as "…", since it speaks of every row with
    the code. None for a code the catalogue does not know."""
    messages = ROW_MESSAGES.get(code)
    if messages is None:
        return None
    zh, en = (_PLACEHOLDER.sub(_ANY, message) for message in messages)
    return zh, en


def value_label(value: str, description_zh: str) -> str:
    """A contract value in words: the lead term of its Chinese description (the text before a
    full-width colon, as in ``新增：本快照在册…``; all of it when there is none) and the value
    in English words, e.g. ``新增 added``, ``售后服务 after sales``."""
    return f"{description_zh.split('：', 1)[0].strip()} {value.replace('_', ' ')}"


def file_name_words(regions: RegionConfig, contracts: Mapping[str, Contract]) -> frozenset[str]:
    """The words an uploaded file's name may show in the report (:func:`file_name_shown`),
    lower-cased: the regions' codes and names (also without 省 or 市, as cities are named with
    and without 市), their cities' names and aliases, and the datasets' names and titles. The
    registry's own words, so none of them names a person."""
    words: set[str] = set()
    for code, region in regions.regions.items():
        words |= {code, region.name_zh, region.name_zh.rstrip("省市"), region.name_en}
        for city, aliases in region.cities.items():
            words |= {city, *aliases}
    for name, contract in contracts.items():
        words |= {name, contract.title_zh, contract.title_en}
    return frozenset(w.lower() for word in words for w in _WORD.findall(word))


def _shown_word(word: str, words: Collection[str]) -> str:
    if _LATIN.fullmatch(word):
        return word if word.lower() in words else _MASK
    # Chinese has no spaces: the registry's words are matched longest first, and each stretch
    # between them is masked as one.
    longest = max((len(w) for w in words), default=1)
    out: list[str] = []
    i = 0
    while i < len(word):
        known = next((word[i:j] for j in range(min(len(word), i + longest), i, -1)
                      if word[i:j] in words), None)
        if known:
            out.append(known)
            i += len(known)
        else:
            if not out or out[-1] != _MASK:
                out.append(_MASK)
            i += 1
    return "".join(out)


def file_name_shown(name: str, words: Collection[str]) -> str:
    """An uploaded file's name as the report shows it. A clerk may name a file after a person
    (``张三提交_merchants.xlsx``), and no rule tells a personal name from other words, so the
    name keeps only what cannot name anyone: the registry's own ``words``
    (:func:`file_name_words`), digits and punctuation, and the extension. Every other run of
    letters, Chinese or Latin (a name in pinyin), becomes ``***``; digit runs long enough to be
    a phone or ID number are masked as everywhere (:func:`registry.config.pii.masked`):
    ``张三提交_merchants_江苏.xlsx`` -> ``***_merchants_江苏.xlsx``."""
    extension = _EXTENSION.search(name)
    stem, suffix = (name[:extension.start()], extension.group()) if extension else (name, "")
    shown = _WORD.sub(lambda m: _shown_word(m.group(), words), stem) + suffix
    return pl.select(masked(pl.lit(shown))).item()


def headline_numbers(merchants: pl.DataFrame, changes: pl.DataFrame) -> dict[str, int]:
    """Merchants listed, trusted merchants, and their change since the previous snapshot.

    The change comes from the snapshot's own delta (``changes``), so it is right even when the
    previous snapshot has since been removed by gc: merchants +added -removed, trusted
    +(trusted after) -(trusted before) over the changed rows. Also the counts per change kind.
    """
    counts = Counter(changes.get_column("change").to_list())
    trusted_after = changes.get_column("trusted_after").fill_null(False).sum()
    trusted_before = changes.get_column("trusted_before").fill_null(False).sum()
    return {
        "merchants": merchants.height,
        "trusted": int(merchants.get_column("trusted").sum()),
        "merchants_change": counts.get("added", 0) - counts.get("removed", 0),
        "trusted_change": int(trusted_after) - int(trusted_before),
        "added": counts.get("added", 0),
        "removed": counts.get("removed", 0),
        "updated": counts.get("updated", 0),
    }


def trusted_by_region_and_grade(merchants: pl.DataFrame, region_codes: Sequence[str]
                                ) -> pl.DataFrame:
    """Trusted merchants per region and grade: ``region``, ``grade``, ``merchants``, one row for
    every region of ``region_codes`` (in that order) and every trusted grade, zeros included.
    A merchant listed in several regions counts in each (it is recognised in each)."""
    trusted = merchants.filter(pl.col("trusted")).select("regions", "grade").explode("regions")
    counts = trusted.group_by(pl.col("regions").alias("region"), "grade").len("merchants")
    grid = pl.DataFrame({"region": list(region_codes)}).join(
        pl.DataFrame({"grade": ["A", "B"]}), how="cross"
    )
    return (
        grid.join(counts, on=["region", "grade"], how="left")
        .with_columns(pl.col("merchants").fill_null(0).cast(pl.Int64))
    )


def score_distribution(merchants: pl.DataFrame, bin_width: int = SCORE_BIN_WIDTH
                       ) -> pl.DataFrame:
    """Listed merchants per score bin and grade: ``score_from`` (inclusive), ``score_to``
    (exclusive; the last bin includes 100), ``grade`` (``none`` below C), ``merchants``.
    Only non-empty cells."""
    last_bin = 100 - bin_width
    return (
        merchants.select(
            (pl.col("score") // bin_width * bin_width).clip(0, last_bin).cast(pl.Int64)
            .alias("score_from"),
            pl.col("grade").fill_null("none"),
        )
        .group_by("score_from", "grade")
        .len("merchants")
        .with_columns((pl.col("score_from") + bin_width).alias("score_to"))
        .select("score_from", "score_to", "grade", pl.col("merchants").cast(pl.Int64))
        .sort("score_from", pl.col("grade").replace_strict(
            {g: i for i, g in enumerate(GRADES)}, return_dtype=pl.Int64))
    )


def top_changes(
    changes: pl.DataFrame,
    names: pl.DataFrame,
    limit: int = TOP_CHANGES,
    *,
    change_labels: Mapping[str, str] | None = None,
    field_labels: Mapping[str, str] | None = None,
) -> pl.DataFrame:
    """The ``limit`` changes a reader should see first: trusted status flips, then removals,
    additions, and updates with the largest score moves. ``names`` (``uscc``, ``name``)
    supplies merchant names, from the current snapshot and, for removed merchants, the
    previous one. Adds ``name``, ``change_label`` (the change in words, from
    ``change_labels``, else the value), ``score_delta`` (null for additions and removals) and
    ``fields`` (the changed fields, comma-joined, each in words from ``field_labels``, e.g.
    ``总分 score``, else by name)."""
    named = names.unique("uscc", keep="first").select("uscc", "name")
    fields = dict(field_labels or {})
    return (
        changes.join(named, on="uscc", how="left")
        .with_columns(
            (pl.col("score_after") - pl.col("score_before")).round(2).alias("score_delta"),
            pl.col("fields_changed").list.eval(
                pl.element().replace_strict(fields, default=pl.element(),
                                            return_dtype=pl.String)
            ).list.join(", ").alias("fields"),
            pl.col("change").replace_strict(dict(change_labels or {}), default=pl.col("change"),
                                            return_dtype=pl.String).alias("change_label"),
            (pl.col("trusted_before").fill_null(False) != pl.col("trusted_after").fill_null(False))
            .alias("_flipped"),
            pl.col("change").replace_strict(_CHANGE_ORDER, default=3, return_dtype=pl.Int64)
            .alias("_kind"),
        )
        .sort(
            ["_flipped", "_kind", pl.col("score_delta").abs(), "uscc"],
            descending=[True, False, True, False],
            nulls_last=True,
        )
        .head(limit)
        .select(
            "uscc", "name", "change", "change_label", "fields", "grade_before", "grade_after",
            "score_before", "score_after", "score_delta", "trusted_before", "trusted_after",
        )
    )


def region_scorecards(
    records: Iterable[BatchRecord],
    regions: RegionConfig,
    input_batches: Iterable[str],
    published_at: datetime,
    top_checks: int = TOP_CHECKS,
    *,
    file_words: Collection[str] = (),
    held: Iterable[BatchRecord] | None = None,
) -> list[dict[str, Any]]:
    """Each configured region's data-quality scorecard for a snapshot, from the batch records
    committed by ``published_at`` (later uploads belong to later snapshots): ``records`` are
    counted, and the held ones among ``held`` (``records`` when None) are listed. A report
    counts the uploads since the previous snapshot and lists every batch the gate holds
    (:func:`registry.report.writer.report_data`):

    ``code``, ``name_zh``, ``name_en``, ``batches``, ``rows_in``, ``accepted``, ``quarantined``,
    ``accepted_pct`` (None without rows), ``top_checks`` (the ``top_checks`` most frequent
    quarantine codes, most frequent first: ``code``, ``count``, and ``reason_zh`` and
    ``reason_en`` from :func:`check_reason`, None for a code without words), and ``held``
    (batches held by the batch gate and not in ``input_batches``: ``batch_id``, ``dataset``,
    ``file`` (the uploaded file's name as :func:`file_name_shown` shows it with ``file_words``;
    None when not recorded), ``landed_at`` and ``reasons``: the gate's failures as ``code``,
    ``message_zh``, ``message_en``, and a held code the record gives no words for with its
    messages None). A region with no uploads gets a card of zeros, so a silent council shows
    up."""
    published = set(input_batches)
    cards: dict[str, dict[str, Any]] = {}
    failing: dict[str, Counter[str]] = {}
    for code, region in regions.regions.items():
        cards[code] = {
            "code": code, "name_zh": region.name_zh, "name_en": region.name_en,
            "batches": 0, "rows_in": 0, "accepted": 0, "quarantined": 0, "held": [],
        }
        failing[code] = Counter()
    records = list(records)
    for record in sorted(records, key=lambda r: (r.region, r.dataset, r.order)):
        card = cards.get(record.region)
        if card is None or record.created_at > published_at:
            continue
        card["batches"] += 1
        for column in ("rows_in", "accepted", "quarantined"):
            card[column] += getattr(record, column)
        failing[record.region].update(record.error_counts)
    for record in sorted(records if held is None else held,
                         key=lambda r: (r.region, r.dataset, r.order)):
        card = cards.get(record.region)
        if card is None or record.created_at > published_at:
            continue
        if record.status == "held" and record.batch_id not in published:
            card["held"].append({
                "batch_id": record.batch_id,
                "dataset": record.dataset,
                "file": None if record.file is None else file_name_shown(record.file,
                                                                         file_words),
                "landed_at": f"{record.landed_at:%Y-%m-%d %H:%M:%S %Z}",
                "reasons": _held_reasons(record),
            })
    for code, card in cards.items():
        rows = card["rows_in"]
        card["accepted_pct"] = round(100 * card["accepted"] / rows, 1) if rows else None
        # Most frequent first; ties by code so the page is the same on every rebuild.
        card["top_checks"] = [
            {"code": check, "count": count,
             **dict(zip(("reason_zh", "reason_en"), check_reason(check) or (None, None),
                        strict=True))}
            for check, count in sorted(failing[code].items(), key=lambda kv: (-kv[1], kv[0])
                                       )[:top_checks]]
    return list(cards.values())


def _held_reasons(record: BatchRecord) -> list[dict[str, str | None]]:
    """The gate's failures of a held batch in words, then any held code without them (a record
    written before batch records kept the gate's messages)."""
    reasons: list[dict[str, str | None]] = [dict(reason) for reason in record.reasons]
    explained = {reason["code"] for reason in reasons}
    return reasons + [{"code": code, "message_zh": None, "message_en": None}
                      for code in record.held_reasons if code not in explained]


def gift_rankings(products: pl.DataFrame, per_category: int = GIFTS_PER_CATEGORY
                  ) -> pl.DataFrame:
    """The top ``per_category`` products of each category in each evaluation round (newest
    round first), with ``rank_in_category``, ``overall``, ``evaluators`` and the dimensions."""
    return (
        products.filter(pl.col("rank_in_category") <= per_category)
        .sort(["evaluation_round", "category", "rank_in_category", "region", "product_id"],
              descending=[True, False, False, False, False])
        .select(
            "evaluation_round", "category", "rank_in_category", "product_name", "region",
            "origin_city", "overall", "quality", "culture", "packaging", "value", "evaluators",
        )
    )


def relative_link(from_key: str, to_key: str) -> str:
    """The relative URL from the object ``from_key`` to the object ``to_key`` (both storage
    keys), so links work on disk and from any static host of the storage root alike."""
    return posixpath.relpath(to_key, posixpath.dirname(from_key))


def _count_axis(counts: pl.Series) -> alt.Axis:
    """Whole-number ticks: merchants come in ones (Vega would otherwise tick 0.5 on a small
    registry)."""
    top = max(int(counts.max() or 0), 1)
    step = max(1, -(-top // 5))
    return alt.Axis(values=list(range(0, top + step, step)), format="d")


def _grade_scale(grades: Iterable[str]) -> alt.Scale:
    """Grade colours for the grades that occur (a legend lists nothing that cannot be seen),
    in display order, each in its own colour whatever else occurs."""
    present = set(grades)
    shown = [g for g in GRADES if g in present]
    return alt.Scale(domain=shown, range=[GRADE_COLOURS[GRADES.index(g)] for g in shown])


def _tooltip(*fields: str) -> list[alt.Tooltip]:
    # Channel objects, not shorthand strings: altair turns each string into its class by
    # hashing its whole schema, which once cost most of the report's rendering time.
    return [alt.Tooltip(field) for field in fields]


def trusted_chart_spec(frame: pl.DataFrame, region_labels: Mapping[str, str]) -> dict[str, Any]:
    """Stacked bars of trusted merchants per region (labelled by ``region_labels``) and grade,
    from :func:`trusted_by_region_and_grade`."""
    # Only the cells with merchants are drawn (so the legend lists the grades that occur); the
    # region axis still shows every region, a council with none included.
    data = frame.filter(pl.col("merchants") > 0).with_columns(
        pl.col("region").replace_strict(region_labels, default=pl.col("region")).alias("label")
    )
    regions = [region_labels.get(c, c) for c in frame["region"].unique(maintain_order=True)]
    chart = (
        alt.Chart(data, title="可信商户（按地区、等级） Trusted merchants by region and grade")
        .mark_bar()
        .encode(
            x=alt.X("label:N", title="地区 Region", sort=regions,
                    scale=alt.Scale(domain=regions), axis=alt.Axis(labelAngle=0)),
            y=alt.Y("sum(merchants):Q", title="可信商户 Trusted merchants",
                    axis=_count_axis(frame.group_by("region").agg(pl.col("merchants").sum())
                                     .get_column("merchants"))),
            color=alt.Color("grade:N", title="等级 Grade",
                            scale=_grade_scale(data.get_column("grade"))),
            tooltip=_tooltip("label:N", "grade:N", "merchants:Q"),
        )
        .properties(width=360, height=220)
    )
    return _spec(chart)


def score_chart_spec(frame: pl.DataFrame, bin_width: int = SCORE_BIN_WIDTH) -> dict[str, Any]:
    """Stacked bars of listed merchants per score bin and grade, from
    :func:`score_distribution`."""
    chart = (
        alt.Chart(frame, title="评分分布 Score distribution")
        .mark_bar()
        .encode(
            x=alt.X("score_from:Q", title="评分 Score", bin=alt.Bin(binned=True, step=bin_width),
                    scale=alt.Scale(domain=[0, 100])),
            x2=alt.X2("score_to"),
            y=alt.Y("sum(merchants):Q", title="商户 Merchants",
                    axis=_count_axis(frame.group_by("score_from").agg(pl.col("merchants").sum())
                                     .get_column("merchants"))),
            color=alt.Color("grade:N", title="等级 Grade",
                            scale=_grade_scale(frame.get_column("grade"))),
            tooltip=_tooltip("score_from:Q", "score_to:Q", "grade:N", "merchants:Q"),
        )
        .properties(width=360, height=220)
    )
    return _spec(chart)


# ---------------------------------------------------------------------------------------------
# The joint complaint analysis, from the snapshot's complaints_summary table


def complaint_category_labels(values: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Each complaint category's label, e.g. ``售后服务 after sales``: the first Chinese word
    given for it (the complaints_summary contract's meaning of the value) and the code in
    English words, in the contract's order (:func:`value_label`)."""
    return {code: value_label(code, words[0]) if words else code.replace("_", " ")
            for code, words in values.items()}


def complaints_headline(summary: pl.DataFrame) -> dict[str, Any]:
    """Complaints received in the window, resolved, unresolved, and the yuan recovered."""
    totals = summary.select(
        pl.col("received", "resolved", "unresolved").sum(),
        pl.col("recovered_amount_cny").sum().round(2),
    ).row(0, named=True)
    return {
        "received": int(totals["received"]),
        "resolved": int(totals["resolved"]),
        "unresolved": int(totals["unresolved"]),
        "recovered_amount_cny": float(totals["recovered_amount_cny"]),
    }


def _month_label() -> pl.Expr:
    return pl.col("month").dt.strftime("%Y-%m").alias("month")


def _region_rank(region_codes: Sequence[str]) -> pl.Expr:
    """Sort key: the configured order of regions, others after them."""
    return pl.col("region").replace_strict(
        {code: i for i, code in enumerate(region_codes)}, default=len(region_codes),
        return_dtype=pl.Int64)


def complaints_by_region_and_month(summary: pl.DataFrame, region_codes: Sequence[str]
                                   ) -> pl.DataFrame:
    """Per region and month (``YYYY-MM``): complaints ``received`` and, of those, ``resolved``;
    every category together. Regions in ``region_codes`` order, then months."""
    return (
        summary.group_by("region", "month")
        .agg(pl.col("received", "resolved").sum())
        .sort(_region_rank(region_codes), "region", "month")
        .select("region", _month_label(), "received", "resolved")
    )


def complaints_by_region_and_category(
    summary: pl.DataFrame, region_codes: Sequence[str], categories: Sequence[str]
) -> pl.DataFrame:
    """Per region and category, over the whole window: ``received``, ``resolved`` and
    ``recovered_amount_cny``. Regions in ``region_codes`` order, categories in ``categories``
    order (the contract's)."""
    rank = pl.col("category").replace_strict(
        {c: i for i, c in enumerate(categories)}, default=len(categories), return_dtype=pl.Int64)
    return (
        summary.group_by("region", "category")
        .agg(pl.col("received", "resolved").sum(),
             pl.col("recovered_amount_cny").sum().round(2))
        .sort(_region_rank(region_codes), "region", rank, "category")
    )


def days_to_resolve(summary: pl.DataFrame, region_codes: Sequence[str]) -> pl.DataFrame:
    """The rows with a resolved complaint: ``region``, ``category``, ``month`` (``YYYY-MM``),
    ``median_days_to_resolve`` and ``resolved``. Medians are not added up across months or
    categories: each point of the chart is one published row."""
    return (
        summary.filter(pl.col("median_days_to_resolve").is_not_null())
        .sort(_region_rank(region_codes), "region", "month", "category")
        .select("region", "category", _month_label(), "median_days_to_resolve", "resolved")
    )


def cross_region_merchants(summary: pl.DataFrame, region_codes: Sequence[str]) -> pl.DataFrame:
    """Per region and month (``YYYY-MM``): ``merchants`` named in the region's complaints that
    were also named in another region's, added up over the categories (a merchant named in two
    categories counts in each), and ``named``, every merchant named, the same way."""
    return (
        summary.group_by("region", "month")
        .agg(pl.col("merchants_named_in_other_regions").sum().alias("merchants"),
             pl.col("merchants_named").sum().alias("named"))
        .sort(_region_rank(region_codes), "region", "month")
        .select("region", _month_label(), "merchants", "named")
    )


def _labelled(frame: pl.DataFrame, column: str, labels: Mapping[str, str], alias: str
              ) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(column).replace_strict(dict(labels), default=pl.col(column), return_dtype=pl.String)
        .alias(alias))


def complaint_charts(
    summary: pl.DataFrame,
    region_labels: Mapping[str, str],
    category_labels: Mapping[str, str],
) -> dict[str, dict[str, Any]]:
    """The chart specs of the joint complaint analysis, by name: received and resolved per
    region by month, categories per region, median days to resolve, yuan recovered, and the
    merchants also named in another region. ``region_labels`` (code -> label) gives the regions'
    order, ``category_labels`` (code -> label, :func:`complaint_category_labels`) the
    categories'. No chart for an empty summary."""
    if summary.is_empty():
        return {}
    regions = list(region_labels)
    region_order = list(region_labels.values())
    region_axis = alt.X("region_label:N", title="地区 Region", sort=region_order,
                        axis=alt.Axis(labelAngle=0))
    # Legends list the categories and regions that occur, in the contract's and the
    # configuration's order.
    occurring = set(summary.get_column("category"))
    category_order = [label for code, label in category_labels.items() if code in occurring]
    category_colour = alt.Color("category_label:N", title="投诉类别 Category",
                                sort=category_order,
                                scale=alt.Scale(domain=category_order, scheme="tableau10"),
                                legend=alt.Legend(orient="bottom", columns=3))

    def region_colour(frame: pl.DataFrame) -> alt.Color:
        present = set(frame.get_column("region"))
        order = [label for code, label in region_labels.items() if code in present]
        return alt.Color("region_label:N", title="地区 Region", sort=order,
                         scale=alt.Scale(domain=order, scheme="set2"))

    monthly = _labelled(complaints_by_region_and_month(summary, regions), "region",
                        region_labels, "region_label").unpivot(
        index=["region", "region_label", "month"], on=["received", "resolved"],
        variable_name="measure", value_name="complaints",
    ).with_columns(pl.col("measure").replace_strict(_MEASURE_LABELS).alias("measure_label"))
    measure_order = list(_MEASURE_LABELS.values())
    monthly_chart = (
        alt.Chart(monthly)
        .mark_bar()
        .encode(
            x=alt.X("month:O", title="受理月份 Month received", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("measure_label:N", sort=measure_order),
            y=alt.Y("complaints:Q", title="投诉 Complaints",
                    axis=_count_axis(monthly.get_column("complaints"))),
            color=alt.Color("measure_label:N", title="", sort=measure_order,
                            scale=alt.Scale(domain=measure_order,
                                            range=list(_MEASURE_COLOURS))),
            tooltip=_tooltip("region_label:N", "month:O", "measure_label:N", "complaints:Q"),
        )
        .properties(width=220, height=160)
        .facet(facet=alt.Facet("region_label:N", title=None, sort=region_order), columns=2,
               title="受理与办结（按地区、月份） Received and resolved by region and month")
    )

    by_category = _labelled(_labelled(
        complaints_by_region_and_category(summary, regions, list(category_labels)),
        "region", region_labels, "region_label"), "category", category_labels, "category_label"
    ).with_columns(  # stacked in the contract's order of categories
        pl.col("category").replace_strict(
            {c: i for i, c in enumerate(category_labels)}, default=len(category_labels),
            return_dtype=pl.Int64).alias("category_rank"))
    totals = by_category.group_by("region").agg(pl.col("received").sum())
    categories_chart = (
        alt.Chart(by_category, title="投诉类别（按地区） Complaint categories by region")
        .mark_bar()
        .encode(
            x=region_axis,
            y=alt.Y("sum(received):Q", title="投诉 Complaints",
                    axis=_count_axis(totals.get_column("received"))),
            color=category_colour,
            order=alt.Order("category_rank:Q"),
            tooltip=_tooltip("region_label:N", "category_label:N", "received:Q",
                             "resolved:Q"),
        )
        .properties(width=360, height=220)
    )
    recovered_chart = (
        alt.Chart(by_category, title="挽回经济损失（按地区、类别） Amounts recovered by region "
                                     "and category")
        .mark_bar()
        .encode(
            x=region_axis,
            y=alt.Y("sum(recovered_amount_cny):Q", title="挽回经济损失（元） Recovered (CNY)",
                    axis=alt.Axis(format=",.2f")),
            color=category_colour,
            order=alt.Order("category_rank:Q"),
            tooltip=[*_tooltip("region_label:N", "category_label:N"),
                     alt.Tooltip("recovered_amount_cny:Q", format=",.2f")],
        )
        .properties(width=360, height=220)
    )

    days = _labelled(_labelled(days_to_resolve(summary, regions), "region", region_labels,
                               "region_label"), "category", category_labels, "category_label")
    days_chart = (
        alt.Chart(days, title="办结天数中位数 Median days to resolve")
        .mark_circle(opacity=0.8)
        .encode(
            x=alt.X("month:O", title="受理月份 Month received", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("median_days_to_resolve:Q", title="天 Days"),
            color=region_colour(days),
            size=alt.Size("resolved:Q", title="办结 Resolved", legend=None),
            tooltip=_tooltip("region_label:N", "category_label:N", "month:O",
                             "median_days_to_resolve:Q", "resolved:Q"),
        )
        .properties(width=360, height=220)
    )

    cross = _labelled(cross_region_merchants(summary, regions), "region", region_labels,
                      "region_label")
    cross_chart = (
        alt.Chart(cross, title="被多个地区投诉的商户 Merchants named in more than one region")
        .mark_bar()
        .encode(
            x=alt.X("month:O", title="受理月份 Month received", axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("region_label:N", sort=region_order),
            y=alt.Y("merchants:Q", title="商户 Merchants",
                    axis=_count_axis(cross.get_column("merchants")),
                    # Whole ticks up to at least 1, even when no merchant is named twice.
                    scale=alt.Scale(domainMin=0,
                                    domainMax=max(1, int(cross["merchants"].max() or 0)))),
            color=region_colour(cross),
            tooltip=_tooltip("region_label:N", "month:O", "merchants:Q", "named:Q"),
        )
        .properties(width=360, height=220)
    )
    return {
        "complaints_monthly": _spec(monthly_chart),
        "complaints_categories": _spec(categories_chart),
        "complaints_days": _spec(days_chart),
        "complaints_recovered": _spec(recovered_chart),
        "complaints_cross_region": _spec(cross_chart),
    }


_MEASURE_LABELS = {"received": "受理 received", "resolved": "办结 resolved"}
_MEASURE_COLOURS = ("#4c78a8", "#1b7837")


def _spec(chart: alt.Chart | alt.FacetChart) -> dict[str, Any]:
    spec = chart.to_dict(validate=False)
    # The schema URL is an identifier, never fetched; dropping it keeps the page free of URLs.
    spec.pop("$schema", None)
    return spec
