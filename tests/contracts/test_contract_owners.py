"""The published contracts and the rest of the registry say the same thing: the values a contract
allows are the ones the score model, the build and the input contracts produce; and
registry.config.published refuses a contract it cannot read strictly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from registry.build.complaints import COMPLAINTS_SUMMARY_KEY, COMPLAINTS_SUMMARY_SCHEMA
from registry.build.scores import (
    DISQUALIFIER_SERIOUS_FAILURE,
    DISQUALIFIER_UNRESOLVED,
    VERDICTS,
    status_disqualifier,
)
from registry.config.contracts import load_contracts
from registry.config.published import (
    CONTRACT_SUFFIX,
    PublishedColumn,
    load_published_contracts,
    published_contract,
)
from registry.config.score_model import load_score_model
from registry.config.settings import PROJECT_ROOT

CONTRACTS = load_published_contracts()
MODEL = load_score_model(PROJECT_ROOT / "config", 1).model
INPUTS = load_contracts(PROJECT_ROOT / "schemas")


def _column(table: str, name: str) -> PublishedColumn:
    return next(c for c in CONTRACTS[table].columns if c.name == name)


def _values(table: str, name: str) -> list[str]:
    return [v.value for v in _column(table, name).values]


def test_grades_are_the_score_models_with_its_thresholds() -> None:
    for table, column in (("merchants", "grade"), ("changes", "grade_before"),
                          ("changes", "grade_after")):
        assert _values(table, column) == [g.grade for g in MODEL.grades]
    grade = _column("merchants", "grade")
    for threshold, value in zip(MODEL.grades, grade.values, strict=True):
        assert f"{threshold.min_score:g}" in value.description_en
        assert f"{threshold.min_score:g}" in grade.description_en
    assert "A or B" in _column("merchants", "trusted").description_en
    assert MODEL.trusted_grades == ["A", "B"]


def test_disqualifications_and_verdicts_are_the_builds() -> None:
    assert _values("merchants", "disqualifications") == [
        *map(status_disqualifier, MODEL.disqualifiers.statuses),
        DISQUALIFIER_SERIOUS_FAILURE,
        DISQUALIFIER_UNRESOLVED,
    ]
    assert tuple(_values("merchants", "verdict")) == VERDICTS


def test_programmes_and_complaint_categories_are_the_input_contracts() -> None:
    assert _values("merchants", "programs") == list(INPUTS["merchants"].by_name["program"].values)
    assert _values("complaints_summary", "category") == list(
        INPUTS["complaints"].by_name["category"].values)


def test_the_complaints_summary_is_built_as_its_contract_says() -> None:
    contract = CONTRACTS["complaints_summary"]
    assert contract.schema == COMPLAINTS_SUMMARY_SCHEMA
    assert list(contract.schema) == list(COMPLAINTS_SUMMARY_SCHEMA)
    assert contract.key == COMPLAINTS_SUMMARY_KEY


def test_a_contract_reads_as_columns_in_order_with_both_descriptions() -> None:
    merchants = CONTRACTS["merchants"]
    assert (merchants.table, merchants.version, merchants.major) == ("merchants", "1.1.1", 1)
    assert merchants.column_names[-1] == "verdict" and merchants.key == ("uscc",)
    assert merchants.schema["disqualifications"] == pl.List(pl.String)
    assert merchants.path is not None and merchants.raw == merchants.path.read_bytes()
    score = _column("merchants", "score")
    assert (score.dtype, score.required, score.unit) == (pl.Float64, True, "points")
    assert score.description_zh.startswith("总分") and score.label_zh == "总分"
    assert CONTRACTS["products"].key == ("region", "product_id", "evaluation_round")


def _without_chinese(d: dict[str, Any]) -> None:
    d["schema"][0]["properties"][1]["customProperties"] = []


def _unknown_type(d: dict[str, Any]) -> None:
    d["schema"][0]["properties"][1]["physicalType"] = "VARCHAR"


def _twice(d: dict[str, Any]) -> None:
    d["schema"][0]["properties"].append(d["schema"][0]["properties"][0])


def _other_table(d: dict[str, Any]) -> None:
    d["name"] = "shops"


def _key_gap(d: dict[str, Any]) -> None:
    d["schema"][0]["properties"][0]["primaryKeyPosition"] = 2


def _float_version(d: dict[str, Any]) -> None:
    d["version"] = 1.1


REFUSED = {
    "a column without a Chinese description": (_without_chinese, "descriptionZh"),
    "a type that is not a Parquet type of the registry": (_unknown_type, "VARCHAR"),
    "a column declared twice": (_twice, "declared twice"),
    "a contract of another table": (_other_table, "shops"),
    "a key position missing": (_key_gap, "primaryKeyPosition"),
    "a version that is not semver": (_float_version, "version"),
}


@pytest.mark.parametrize(("change", "message"), REFUSED.values(), ids=list(REFUSED))
def test_a_contract_the_registry_cannot_read_strictly_is_refused(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    document = yaml.safe_load(CONTRACTS["merchants"].raw)
    change(document)
    path = tmp_path / f"merchants{CONTRACT_SUFFIX}"
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        published_contract(path)
