"""The score model: the versioned weights and thresholds of the merchant scores
(``config/score_model_v{N}.yaml``), validated strictly, with the SHA-256 of the file a
snapshot's manifest records."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from registry.config.yaml_loading import safe_load


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CompliancePoints(_Strict):
    points: dict[str, float]


class ComplaintRules(_Strict):
    max_points: float
    per_unresolved: float
    per_resolved_beyond_free: float
    free_resolved: int = Field(ge=0)
    unresolved_statuses: list[str]


class QualityRules(_Strict):
    max_points: float
    neutral_points: float
    gift_scale: float = Field(gt=0)
    gift_program: str


class DisqualifierRules(_Strict):
    statuses: list[str]
    serious_severity: str
    max_unresolved_complaints: int = Field(ge=0)


class GradeThreshold(_Strict):
    grade: str
    min_score: float


class GiftProductRules(_Strict):
    dimensions: list[str]
    trim_fraction: float = Field(ge=0, lt=0.5)
    trim_min_evaluators: int = Field(ge=3)


class ScoreModel(_Strict):
    """Score model weights and thresholds, validated; unknown keys are refused."""

    version: int
    window_days: int = Field(gt=0)
    compliance: CompliancePoints
    complaints: ComplaintRules
    quality: QualityRules
    disqualifiers: DisqualifierRules
    grades: list[GradeThreshold]
    trusted_grades: list[str]
    gift_products: GiftProductRules


@dataclass(frozen=True)
class LoadedScoreModel:
    model: ScoreModel
    sha256: str


def load_score_model(config_dir: Path, version: int) -> LoadedScoreModel:
    """Parse ``score_model_v{version}.yaml`` from ``config_dir``.

    Raises ``FileNotFoundError`` for a missing version and ``pydantic.ValidationError`` for a
    file with missing or unknown keys, or a ``version`` field that disagrees with its name.
    """
    raw = (Path(config_dir) / f"score_model_v{version}.yaml").read_bytes()
    model = ScoreModel.model_validate(safe_load(raw))
    if model.version != version:
        raise ValueError(f"score_model_v{version}.yaml declares version {model.version}")
    return LoadedScoreModel(model=model, sha256=hashlib.sha256(raw).hexdigest())
