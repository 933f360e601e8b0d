"""The published tables' contract files, as CI holds them (contracts/README.md): each lints as
ODCS, each table has a released version, and no contract breaks its released version without a
new major version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from contract_checks import RELEASED_DIR, lint_problems, release_problems

from registry.config.published import CONTRACT_SUFFIX, CONTRACTS_DIR, load_published_contracts
from registry.publish.tables import TABLE_ORDER

CONTRACT_FILES = sorted(CONTRACTS_DIR.glob(f"*{CONTRACT_SUFFIX}"))
RELEASED_FILES = sorted(RELEASED_DIR.glob(f"*{CONTRACT_SUFFIX}"))


@pytest.mark.parametrize("path", CONTRACT_FILES + RELEASED_FILES,
                         ids=lambda p: str(p.relative_to(CONTRACTS_DIR)))
def test_every_contract_passes_datacontract_lint(path: Path) -> None:
    assert lint_problems(path) == []


def test_every_published_table_has_a_contract_and_a_released_version() -> None:
    tables = set(load_published_contracts())
    assert tables == set(TABLE_ORDER)
    assert {p.name.removesuffix(CONTRACT_SUFFIX) for p in RELEASED_FILES} == tables


@pytest.mark.parametrize("table", TABLE_ORDER)
def test_each_contract_may_follow_its_released_version(table: str) -> None:
    released = RELEASED_DIR / f"{table}{CONTRACT_SUFFIX}"
    assert release_problems(released, CONTRACTS_DIR / f"{table}{CONTRACT_SUFFIX}") == []


def _columns(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["schema"][0]["properties"]


def _column(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in _columns(document) if c["name"] == name)


def _drop_name(d: dict[str, Any]) -> None:
    _columns(d).remove(_column(d, "name"))


def _move_name_first(d: dict[str, Any]) -> None:
    _columns(d).insert(0, _columns(d).pop(1))


def _retype_score(d: dict[str, Any]) -> None:
    _column(d, "complaints_12m").update(physicalType="DOUBLE", logicalType="number")


def _require_gift_score(d: dict[str, Any]) -> None:
    _column(d, "gift_score")["required"] = True


def _allow_null_name(d: dict[str, Any]) -> None:
    _column(d, "name")["required"] = False


def _drop_grade_c(d: dict[str, Any]) -> None:
    _column(d, "grade")["enum"].pop()


def _add_verdict(d: dict[str, Any]) -> None:
    _column(d, "verdict")["enum"].append(
        {"value": "probation", "description": "On probation.",
         "customProperties": [{"property": "descriptionZh", "value": "观察期"}]})


def _key_on_name(d: dict[str, Any]) -> None:
    _column(d, "name").update(primaryKey=True, primaryKeyPosition=2)


def _release(tmp_path: Path, change: Callable[[dict[str, Any]], None], version: str) -> Path:
    """A copy of the merchants contract with ``change`` made and ``version`` given."""
    document = yaml.safe_load(load_published_contracts()["merchants"].raw)
    change(document)
    document["version"] = version
    path = tmp_path / f"merchants{CONTRACT_SUFFIX}"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False),
                    encoding="utf-8")
    return path


BREAKING = {
    "a column removed": (_drop_name, "name"),
    "a column moved": (_move_name_first, "no longer the first columns"),
    "a type changed": (_retype_score, "complaints_12m"),
    "a column made required": (_require_gift_score, "gift_score"),
    "a column allowed to be null": (_allow_null_name, "name"),
    "an enum value removed": (_drop_grade_c, "grade"),
    "the key changed": (_key_on_name, "name"),
}


@pytest.mark.parametrize(("change", "named"), BREAKING.values(), ids=list(BREAKING))
def test_a_breaking_change_needs_a_major_version(tmp_path: Path, change, named: str) -> None:
    current = CONTRACTS_DIR / f"merchants{CONTRACT_SUFFIX}"
    problems = release_problems(current, _release(tmp_path, change, "1.2.0"))
    assert len(problems) == 1 and "need major version 2" in problems[0], problems
    assert named in problems[0]


def test_a_column_removed_with_a_major_version_is_released(tmp_path: Path) -> None:
    current = CONTRACTS_DIR / f"merchants{CONTRACT_SUFFIX}"
    assert release_problems(current, _release(tmp_path, _drop_name, "2.0.0")) == []


def _add_column(d: dict[str, Any]) -> None:
    _columns(d).append({**_column(d, "verdict"), "name": "verdict_reason"})


MINOR = {
    # As verdict was in merchants 1.1.0: readers by name or by position keep working.
    "a new column at the end": _add_column,
    "a new enum value": _add_verdict,
}


@pytest.mark.parametrize("change", MINOR.values(), ids=list(MINOR))
def test_an_addition_is_a_minor_version(tmp_path: Path, change) -> None:
    current = CONTRACTS_DIR / f"merchants{CONTRACT_SUFFIX}"
    assert release_problems(current, _release(tmp_path, change, "1.2.0")) == []


def test_a_changed_contract_needs_a_new_version(tmp_path: Path) -> None:
    def reword(d: dict[str, Any]) -> None:
        _column(d, "name")["description"] = "The merchant's name."

    current = CONTRACTS_DIR / f"merchants{CONTRACT_SUFFIX}"
    version = load_published_contracts()["merchants"].version
    problems = release_problems(current, _release(tmp_path, reword, version))
    assert problems == [f"the contract changed but its version {version} is not greater than "
                        f"the released {version}"]
    assert release_problems(current, _release(tmp_path, reword, "1.2.0")) == []
