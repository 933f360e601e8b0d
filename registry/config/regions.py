"""Region configuration (``config/regions.yaml``): regions are data, not code."""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from registry.config.yaml_loading import safe_load

UploadMode = Literal["upsert", "replace"]


class Region(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str
    name_zh: str
    name_en: str
    division_code: str = Field(pattern=r"^\d{2}$")
    cities: dict[str, list[str]]
    upload_modes: dict[str, UploadMode] = Field(default_factory=dict)

    def upload_mode(self, dataset: str) -> UploadMode:
        return self.upload_modes.get(dataset, "upsert")


class RegionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    regions: dict[str, Region]

    @model_validator(mode="before")
    @classmethod
    def _fill_codes(cls, data: dict) -> dict:
        regions = data.get("regions") or {}
        data["regions"] = {code: {"code": code, **body} for code, body in regions.items()}
        return data

    @model_validator(mode="after")
    def _aliases_unique(self) -> RegionConfig:
        seen: dict[str, str] = {}
        for region in self.regions.values():
            for city, aliases in region.cities.items():
                for alias in (city, *aliases):
                    key = city_key(alias)
                    if seen.setdefault(key, region.code) != region.code:
                        raise ValueError(f"city alias {alias!r} is claimed by two regions")
        return self

    def city_index(self) -> dict[str, tuple[str, str]]:
        """Matching key of every city name and alias -> (region code, canonical city)."""
        index: dict[str, tuple[str, str]] = {}
        for region in self.regions.values():
            for city, aliases in region.cities.items():
                for alias in (city, *aliases):
                    index[city_key(alias)] = (region.code, city)
        return index

    @property
    def division_regions(self) -> dict[str, str]:
        """GB/T 2260 province division code (USCC positions 3-4) -> region code."""
        return {region.division_code: code for code, region in self.regions.items()}


def city_key(name: str) -> str:
    """How a city name is matched: NFKC, case-folded, without spaces."""
    return "".join(unicodedata.normalize("NFKC", name).casefold().split())


@cache
def load_regions(config_dir: Path) -> RegionConfig:
    """Parse and validate ``regions.yaml`` in ``config_dir``. Raises on an invalid file."""
    with open(Path(config_dir) / "regions.yaml", encoding="utf-8") as fh:
        return RegionConfig.model_validate(safe_load(fh))
