"""The report's data and chart specs, computed from snapshot frames and batch records. Pure:
no storage, no settings."""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import altair as alt
import polars as pl

from registry.config.regions import RegionConfig
from registry.ledger.records import BatchRecord

TOP_CHANGES = 20
TOP_CHECKS = 3
GIFTS_PER_CATEGORY = 5
SCORE_BIN_WIDTH = 10


# Grades in display order; "none" is a merchant scored below C (listed, but not graded).
GRADES = ("A", "B", "C", "none")
GRADE_COLOURS = ("#1b7837", "#5aae61", "#f4a582", "#bababa")
_CHANGE_ORDER = {"removed": 0, "added": 1, "updated": 2}


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
) -> pl.DataFrame:
    """The ``limit`` changes a reader should see first: trusted status flips, then removals,
    additions, and updates with the largest score moves. ``names`` (``uscc``, ``name``)
    supplies merchant names, from the current snapshot and, for removed merchants, the
    previous one. Adds ``name``, ``score_delta`` (null for additions and removals) and
    ``fields`` (the changed fields, comma-joined)."""
    named = names.unique("uscc", keep="first").select("uscc", "name")
    return (
        changes.join(named, on="uscc", how="left")
        .with_columns(
            (pl.col("score_after") - pl.col("score_before")).round(2).alias("score_delta"),
            pl.col("fields_changed").list.join(", ").alias("fields"),
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
            "uscc", "name", "change", "fields", "grade_before", "grade_after", "score_before",
            "score_after", "score_delta", "trusted_before", "trusted_after",
        )
    )


def region_scorecards(
    records: Iterable[BatchRecord],
    regions: RegionConfig,
    input_batches: Iterable[str],
    published_at: datetime,
    top_checks: int = TOP_CHECKS,
) -> list[dict[str, Any]]:
    """Each configured region's data-quality scorecard for a snapshot, from the batch records
    committed by ``published_at`` (later uploads belong to later snapshots):

    ``code``, ``name_zh``, ``name_en``, ``batches``, ``rows_in``, ``accepted``, ``quarantined``,
    ``accepted_pct`` (None without rows), ``top_checks`` (the ``top_checks`` most frequent
    quarantine codes as ``(code, count)``, most frequent first), and ``held`` (batches held by
    the batch gate and not in ``input_batches``: ``batch_id``, ``dataset``, ``reasons``).
    A region with no uploads gets a card of zeros, so a silent council shows up.
    """
    published = set(input_batches)
    cards: dict[str, dict[str, Any]] = {}
    failing: dict[str, Counter[str]] = {}
    for code, region in regions.regions.items():
        cards[code] = {
            "code": code, "name_zh": region.name_zh, "name_en": region.name_en,
            "batches": 0, "rows_in": 0, "accepted": 0, "quarantined": 0, "held": [],
        }
        failing[code] = Counter()
    for record in sorted(records, key=lambda r: (r.region, r.dataset, r.order)):
        card = cards.get(record.region)
        if card is None or record.created_at > published_at:
            continue
        card["batches"] += 1
        for column in ("rows_in", "accepted", "quarantined"):
            card[column] += getattr(record, column)
        failing[record.region].update(record.error_counts)
        if record.status == "held" and record.batch_id not in published:
            card["held"].append({
                "batch_id": record.batch_id,
                "dataset": record.dataset,
                "reasons": list(record.held_reasons),
            })
    for code, card in cards.items():
        rows = card["rows_in"]
        card["accepted_pct"] = round(100 * card["accepted"] / rows, 1) if rows else None
        # Most frequent first; ties by code so the page is the same on every rebuild.
        card["top_checks"] = sorted(failing[code].items(), key=lambda kv: (-kv[1], kv[0])
                                    )[:top_checks]
    return list(cards.values())


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


def _grade_scale() -> alt.Scale:
    return alt.Scale(domain=list(GRADES), range=list(GRADE_COLOURS))


def trusted_chart_spec(frame: pl.DataFrame, region_labels: Mapping[str, str]) -> dict[str, Any]:
    """Stacked bars of trusted merchants per region (labelled by ``region_labels``) and grade,
    from :func:`trusted_by_region_and_grade`."""
    data = frame.with_columns(
        pl.col("region").replace_strict(region_labels, default=pl.col("region")).alias("label")
    )
    chart = (
        alt.Chart(data, title="可信商户（按地区、等级） Trusted merchants by region and grade")
        .mark_bar()
        .encode(
            x=alt.X("label:N", title="地区 Region", sort=[region_labels.get(c, c)
                                                        for c in frame["region"].unique(
                                                            maintain_order=True)],
                    axis=alt.Axis(labelAngle=0)),
            y=alt.Y("sum(merchants):Q", title="可信商户 Trusted merchants",
                    axis=_count_axis(frame.group_by("region").agg(pl.col("merchants").sum())
                                     .get_column("merchants"))),
            color=alt.Color("grade:N", title="等级 Grade", scale=_grade_scale()),
            tooltip=["label:N", "grade:N", "merchants:Q"],
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
            x2="score_to:Q",
            y=alt.Y("sum(merchants):Q", title="商户 Merchants",
                    axis=_count_axis(frame.group_by("score_from").agg(pl.col("merchants").sum())
                                     .get_column("merchants"))),
            color=alt.Color("grade:N", title="等级 Grade", scale=_grade_scale()),
            tooltip=["score_from:Q", "score_to:Q", "grade:N", "merchants:Q"],
        )
        .properties(width=360, height=220)
    )
    return _spec(chart)


def _spec(chart: alt.Chart) -> dict[str, Any]:
    spec = chart.to_dict()
    # The schema URL is an identifier, never fetched; dropping it keeps the page free of URLs.
    spec.pop("$schema", None)
    return spec
