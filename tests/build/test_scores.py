"""Every score component, disqualifier, grade threshold and the trusted rule on tiny frames."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from pydantic import ValidationError

from registry.build.scores import (
    disqualifications,
    grade,
    score_complaints,
    score_compliance,
    score_quality,
    scores_explained,
    trusted,
)
from registry.config.score_model import ScoreModel, load_score_model
from registry.config.settings import PROJECT_ROOT

MODEL = load_score_model(PROJECT_ROOT / "config", 1).model
FLAGS = ["chinese_label", "traceable", "no_reason_return_7d", "offline_no_reason_return",
         "advance_compensation"]


def facts(**columns) -> pl.DataFrame:
    """One merchant of facts with neutral defaults, overridden per test."""
    row = {
        **dict.fromkeys(FLAGS, True),
        "complaints_12m": 0,
        "unresolved_12m": 0,
        "inspections_12m": 0,
        "failed_inspections_12m": 0,
        "serious_failures_12m": 0,
        "gift_score": None,
        "programs": ["imported_goods"],
        "statuses": ["active"],
    }
    row.update(columns)
    return pl.DataFrame([row], schema_overrides={"gift_score": pl.Float64})


def one(frame: pl.DataFrame, expr: pl.Expr):
    return frame.select(expr).to_series().to_list()[0]


@pytest.mark.parametrize(
    ("flags", "points"),
    [
        ({}, 40.0),
        (dict.fromkeys(FLAGS, False), 0.0),
        ({**dict.fromkeys(FLAGS, False), "chinese_label": True}, 10.0),
        ({**dict.fromkeys(FLAGS, False), "traceable": True}, 10.0),
        ({**dict.fromkeys(FLAGS, False), "no_reason_return_7d": True}, 10.0),
        ({**dict.fromkeys(FLAGS, False), "offline_no_reason_return": True}, 5.0),
        ({**dict.fromkeys(FLAGS, False), "advance_compensation": True}, 5.0),
        ({"chinese_label": None}, 30.0),  # an unknown commitment earns nothing
    ],
)
def test_compliance_points_per_commitment(flags, points):
    assert one(facts(**flags), score_compliance(MODEL)) == points


@pytest.mark.parametrize(
    ("complaints", "unresolved", "points"),
    [
        (0, 0, 30.0),
        (3, 0, 30.0),  # the first three resolved complaints are free
        (5, 0, 28.0),  # two resolved beyond the third: -1 each
        (2, 2, 24.0),  # -3 per unresolved
        (6, 2, 23.0),  # 4 resolved (one beyond the third) and 2 unresolved
        (11, 11, 0.0),  # floor at zero
        (40, 0, 0.0),
    ],
)
def test_complaint_points(complaints, unresolved, points):
    frame = facts(complaints_12m=complaints, unresolved_12m=unresolved)
    assert one(frame, score_complaints(MODEL)) == points


@pytest.mark.parametrize(
    ("columns", "points"),
    [
        ({}, 20.0),  # neither inspections nor gift evaluations: neutral
        ({"inspections_12m": 4, "failed_inspections_12m": 1}, 22.5),
        ({"inspections_12m": 3, "failed_inspections_12m": 3}, 0.0),
        ({"programs": ["specialty_gift"], "gift_score": 8.0}, 24.0),
        (
            {"programs": ["specialty_gift"], "gift_score": 8.0, "inspections_12m": 4,
             "failed_inspections_12m": 1},
            23.25,  # mean of 22.5 and 24
        ),
        # Gift scores only count for specialty-gift merchants.
        ({"programs": ["imported_goods"], "gift_score": 2.0}, 20.0),
        ({"programs": ["specialty_gift"], "gift_score": None}, 20.0),
    ],
)
def test_quality_points(columns, points):
    assert one(facts(**columns), score_quality(MODEL)) == points


@pytest.mark.parametrize(
    ("columns", "codes"),
    [
        ({}, []),
        ({"statuses": ["active", "revoked"]}, ["status_revoked"]),
        ({"statuses": ["suspended"]}, ["status_suspended"]),
        ({"serious_failures_12m": 1, "inspections_12m": 1, "failed_inspections_12m": 1},
         ["serious_inspection_failure"]),
        ({"failed_inspections_12m": 2, "inspections_12m": 2}, []),  # minor failures only
        ({"unresolved_12m": 5, "complaints_12m": 5}, []),  # five is the limit, not over it
        ({"unresolved_12m": 6, "complaints_12m": 6}, ["unresolved_complaints_over_limit"]),
        (
            {"statuses": ["revoked", "suspended"], "serious_failures_12m": 1,
             "unresolved_12m": 9},
            ["status_revoked", "status_suspended", "serious_inspection_failure",
             "unresolved_complaints_over_limit"],
        ),
    ],
)
def test_disqualifiers(columns, codes):
    assert one(facts(**columns), disqualifications(MODEL)) == codes


@pytest.mark.parametrize(
    ("score", "expected"),
    [(100.0, "A"), (85.0, "A"), (84.99, "B"), (70.0, "B"), (69.99, "C"), (60.0, "C"),
     (59.99, None), (0.0, None)],
)
def test_grade_thresholds(score, expected):
    assert one(pl.DataFrame({"score": [score]}), grade(MODEL)) == expected


@pytest.mark.parametrize(
    ("grade_", "codes", "expected"),
    [("A", [], True), ("B", [], True), ("C", [], False), (None, [], False),
     ("A", ["status_revoked"], False)],
)
def test_trusted_needs_a_trusted_grade_and_no_disqualifier(grade_, codes, expected):
    frame = pl.DataFrame(
        {"grade": [grade_], "disqualifications": [codes]},
        schema={"grade": pl.String, "disqualifications": pl.List(pl.String)},
    )
    assert one(frame, trusted(MODEL)) is expected


def test_score_is_the_sum_of_its_components_and_explains_itself():
    frame = pl.concat(
        [
            facts(),
            facts(traceable=False, complaints_12m=4, unresolved_12m=1,
                  inspections_12m=3, failed_inspections_12m=1),
            facts(statuses=["revoked"]),
        ],
        how="vertical_relaxed",
    )
    out = scores_explained(frame.lazy(), MODEL).collect()
    assert out.get_column("score").to_list() == [90.0, 77.0, 90.0]
    second = out.row(1, named=True)
    assert (second["score_compliance"], second["score_complaints"], second["score_quality"]) == (
        30.0, 27.0, 20.0,
    )
    # A disqualified merchant keeps its score but gets no grade.
    assert out.get_column("grade").to_list() == ["A", "B", None]
    assert out.get_column("trusted").to_list() == [True, True, False]
    assert out.get_column("verdict").to_list() == ["trusted", "trusted", "disqualified"]


def test_a_score_is_rounded_once_and_graded_as_published():
    # A gift score of 4.9986 earns 14.9958 quality points: the score 84.9958 is published as
    # 85.0, and a consumer reading 85.0 must find an A.
    frame = facts(programs=["specialty_gift"], gift_score=4.9986)
    out = scores_explained(frame.lazy(), MODEL).collect().row(0, named=True)
    assert (out["score_quality"], out["score"], out["grade"]) == (15.0, 85.0, "A")


def test_score_model_refuses_unknown_keys_and_a_wrong_version(tmp_path: Path):
    text = (PROJECT_ROOT / "config" / "score_model_v1.yaml").read_text(encoding="utf-8")
    (tmp_path / "score_model_v1.yaml").write_text(text + "\nbonus_points: 5\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="bonus_points"):
        load_score_model(tmp_path, 1)
    (tmp_path / "score_model_v2.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="declares version 1"):
        load_score_model(tmp_path, 2)


def test_weights_come_from_the_config_file():
    doubled = ScoreModel.model_validate(
        {**MODEL.model_dump(), "compliance": {"points": {"chinese_label": 80}}}
    )
    assert one(facts(), score_compliance(doubled)) == 80.0
