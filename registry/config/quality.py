"""The quality gate's configuration (``config/quality.yaml``): the numbers of the batch and
registry suites that depend on the deployment (suite names per dataset and table, row-count
floors and replace-batch ratios, the date window, per-region null ceilings) and the
scorecards' settings, validated strictly."""

from __future__ import annotations

import functools
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from registry.config.yaml_loading import safe_load


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SuiteNames(_Strict):
    staged: dict[str, str]
    registry: dict[str, str]


class RowCounts(_Strict):
    floor: dict[str, int]
    replace_min_ratio: float
    replace_max_ratio: float


class DateWindow(_Strict):
    earliest: date
    days_ahead: dict[str, int]


class NullCeilings(_Strict):
    default: dict[str, dict[str, float]]
    regions: dict[str, dict[str, dict[str, float]]] = {}

    def of(self, region: str, dataset: str) -> dict[str, float]:
        """Ceiling (share of rows that may be empty) per optional column of ``dataset``."""
        return {**self.default.get(dataset, {}),
                **self.regions.get(region, {}).get(dataset, {})}


class ScorecardSettings(_Strict):
    top_failing_checks: int


class QualityConfig(_Strict):
    version: int
    suites: SuiteNames
    row_counts: RowCounts
    dates: DateWindow
    null_ceilings: NullCeilings
    scorecards: ScorecardSettings


@functools.cache
def load_quality_config(config_dir: Path) -> QualityConfig:
    """Parse ``quality.yaml`` in ``config_dir``. Raises on an invalid file."""
    with open(Path(config_dir) / "quality.yaml", encoding="utf-8") as fh:
        return QualityConfig.model_validate(safe_load(fh))
