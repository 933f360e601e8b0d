"""Explainable merchant scores (docs/architecture.md §10): one column per component, a list of
disqualification codes, a grade, the trusted flag and the verdict.

Everything here is a pure polars expression or a function of a LazyFrame. The weights and
thresholds come from a versioned :class:`ScoreModel` (``config/score_model_v{N}.yaml``).

The scored frame (one row per merchant, USCC) must carry these facts:

========================== ==========================================================
column                     meaning
========================== ==========================================================
commitment flags           one Boolean per key of ``compliance.points``
``complaints_12m``         complaints received in the window (Int64)
``unresolved_12m``         of which not resolved (Int64)
``inspections_12m``        inspections in the window (Int64)
``failed_inspections_12m`` of which failed (Int64)
``serious_failures_12m``   of which failed with serious severity (Int64)
``gift_score``             mean overall score of the merchant's evaluated products, 0-10
``programs``               List(String) of the merchant's programs
``statuses``               List(String) of its filing statuses in every region
========================== ==========================================================
"""

from __future__ import annotations

import polars as pl

from registry.config.score_model import ScoreModel

# Stable machine codes in `disqualifications`, in the order they are listed.
DISQUALIFIER_SERIOUS_FAILURE = "serious_inspection_failure"
DISQUALIFIER_UNRESOLVED = "unresolved_complaints_over_limit"


def status_disqualifier(status: str) -> str:
    """The code for a disqualifying filing status, e.g. ``status_revoked``."""
    return f"status_{status}"


COMPONENT_COLUMNS = ("score_compliance", "score_complaints", "score_quality")
# Published scores carry this many decimals. They are rounded once, when published: every
# component, the score and the gift scores are computed from unrounded inputs, so that a
# published number never carries the error of an earlier rounding.
DECIMALS = 2


def score_compliance(model: ScoreModel) -> pl.Expr:
    """Points for each commitment the merchant makes; a missing flag earns nothing."""
    points = [
        pl.when(pl.col(flag).fill_null(False)).then(pl.lit(float(weight))).otherwise(0.0)
        for flag, weight in model.compliance.points.items()
    ]
    return pl.sum_horizontal(points).alias("score_compliance")


def score_complaints(model: ScoreModel) -> pl.Expr:
    """Start at the maximum, subtract per unresolved complaint and per resolved complaint beyond
    the free ones, never below zero."""
    rules = model.complaints
    unresolved = pl.col("unresolved_12m").fill_null(0)
    resolved = pl.col("complaints_12m").fill_null(0) - unresolved
    beyond_free = pl.max_horizontal(resolved - rules.free_resolved, pl.lit(0))
    points = (
        pl.lit(rules.max_points)
        - unresolved * rules.per_unresolved
        - beyond_free * rules.per_resolved_beyond_free
    )
    return pl.max_horizontal(points, pl.lit(0.0)).cast(pl.Float64).alias("score_complaints")


def score_quality(model: ScoreModel) -> pl.Expr:
    """Inspection pass rate, and for specialty-gift merchants the gift score, each scaled to the
    maximum; the mean of those that exist, or the neutral points when neither does."""
    rules = model.quality
    inspections = pl.col("inspections_12m").fill_null(0)
    from_inspections = pl.when(inspections > 0).then(
        (inspections - pl.col("failed_inspections_12m").fill_null(0)) / inspections
        * rules.max_points
    )
    is_gift_merchant = pl.col("programs").list.contains(pl.lit(rules.gift_program)).fill_null(
        False
    )
    from_gifts = pl.when(is_gift_merchant & pl.col("gift_score").is_not_null()).then(
        pl.col("gift_score") / rules.gift_scale * rules.max_points
    )
    return (
        pl.mean_horizontal(from_inspections, from_gifts)
        .fill_null(rules.neutral_points)
        .cast(pl.Float64)
        .alias("score_quality")
    )


def disqualifications(model: ScoreModel) -> pl.Expr:
    """Codes of every disqualifier that applies, whichever region reported it, in a fixed
    order; an empty list when none does."""
    rules = model.disqualifiers
    codes = [
        pl.when(pl.col("statuses").list.contains(pl.lit(status)).fill_null(False)).then(
            pl.lit(status_disqualifier(status))
        )
        for status in rules.statuses
    ]
    codes.append(
        pl.when(pl.col("serious_failures_12m").fill_null(0) > 0).then(
            pl.lit(DISQUALIFIER_SERIOUS_FAILURE)
        )
    )
    codes.append(
        pl.when(pl.col("unresolved_12m").fill_null(0) > rules.max_unresolved_complaints).then(
            pl.lit(DISQUALIFIER_UNRESOLVED)
        )
    )
    return (
        pl.concat_list([code.cast(pl.String) for code in codes])
        .list.drop_nulls()
        .alias("disqualifications")
    )


def grade(model: ScoreModel, score: pl.Expr | None = None) -> pl.Expr:
    """The first grade whose threshold ``score`` reaches (highest first), else null."""
    score = pl.col("score") if score is None else score
    thresholds = sorted(model.grades, key=lambda g: g.min_score, reverse=True)
    expr: pl.Expr = pl.lit(None, dtype=pl.String)
    for threshold in reversed(thresholds):
        expr = pl.when(score >= threshold.min_score).then(pl.lit(threshold.grade)).otherwise(expr)
    return expr.alias("grade")


# The published verdict (docs/architecture.md §10.5): one column that no reader can misread.
VERDICT_TRUSTED = "trusted"
VERDICT_LISTED = "listed"
VERDICT_DISQUALIFIED = "disqualified"
VERDICTS = (VERDICT_TRUSTED, VERDICT_LISTED, VERDICT_DISQUALIFIED)


def disqualified() -> pl.Expr:
    return pl.col("disqualifications").list.len() > 0


def trusted(model: ScoreModel) -> pl.Expr:
    """A trusted grade and no disqualifier."""
    return (
        pl.col("grade").is_in(model.trusted_grades).fill_null(False) & ~disqualified()
    ).alias("trusted")


def verdict() -> pl.Expr:
    """``disqualified`` when any disqualifier applies, else ``trusted`` when trusted, else
    ``listed``: listed on a valid filing, without a trusted grade."""
    return (
        pl.when(disqualified())
        .then(pl.lit(VERDICT_DISQUALIFIED))
        .when(pl.col("trusted"))
        .then(pl.lit(VERDICT_TRUSTED))
        .otherwise(pl.lit(VERDICT_LISTED))
        .alias("verdict")
    )


def scores_explained(facts: pl.LazyFrame, model: ScoreModel) -> pl.LazyFrame:
    """``facts`` (see the module docstring) with the score columns added:
    the three components, ``score`` (their sum), ``grade``, ``disqualifications`` and
    ``trusted``.

    The components and ``score`` are computed unrounded and rounded once, to
    :data:`DECIMALS`, as published. The grade is read from the published score, so that a
    score shown as 85.00 is never graded B. With weights of at most two decimals the
    published score is the sum of the published components, give or take 0.01 (the
    tolerance of the registry gate's ``registry_score_not_sum``)."""
    return (
        facts.with_columns(
            score_compliance(model), score_complaints(model), score_quality(model),
            disqualifications(model),
        )
        .with_columns(pl.sum_horizontal(*COMPONENT_COLUMNS).alias("score"))
        .with_columns(pl.col(*COMPONENT_COLUMNS, "score").round(DECIMALS))
        .with_columns(pl.when(~disqualified()).then(grade(model)).alias("grade"))
        .with_columns(trusted(model))
        .with_columns(verdict())
    )
