"""The CI guard of the published tables' contracts (contracts/README.md), through
datacontract-cli's Python API: lint a contract, test a table's Parquet file against it, and
grade a contract against its last released version."""

from __future__ import annotations

from pathlib import Path

import yaml
from datacontract.data_contract import DataContract
from datacontract.model.breaking import BreakingChangeEntry, BreakingChangeLevel, Perspective
from datacontract.model.run import ResultEnum

from registry.config.published import CONTRACTS_DIR, published_contract

RELEASED_DIR = CONTRACTS_DIR / "released"
# datacontract-cli reads a Parquet file into the contract's types, so it cannot check them
# (test_contracts_on_snapshot.py compares the file's types with the contract's itself).
UNCHECKED_TYPES = "Checking types in parquet files is not supported yet."
# datacontract-cli grades a change from one side. From the consumer's side it flags what can
# surprise a reader: a column removed or retyped, nulls allowed, a key, range or quality
# guarantee dropped, and an enum value added, which the registry's semver makes a minor release
# instead (docs/architecture.md §10.6). From the producer's side only these also break a
# release: a column made required, an enum value removed and a key changed (data published
# under the released contract no longer passes); a new column or quality rule is minor.
CONSUMER_MINOR_RULES = frozenset({"enum-constraint-changed"})
PRODUCER_BREAKING_RULES = frozenset(
    {"required-changed", "enum-constraint-changed", "key-constraint-changed"}
)


def _contract(path: Path) -> DataContract:
    # No references to resolve: a contract names nothing outside itself.
    return DataContract(data_contract_file=str(path), inline_references=False)


def lint_problems(path: Path) -> list[str]:
    """What ``datacontract lint`` finds wrong with the contract at ``path`` (empty when valid)."""
    run = _contract(path).lint()
    return [f"{c.result.value}: {c.name} {c.reason or ''}" for c in run.checks
            if c.result != ResultEnum.passed]


def table_failures(contract_yaml: bytes | str, parquet: Path) -> list[str]:
    """What ``datacontract test`` finds wrong with the Parquet file ``parquet`` under the
    contract ``contract_yaml`` (empty when every check passes). The contract gets a local
    server naming the file: the repository's contracts name no machine's paths."""
    document = yaml.safe_load(contract_yaml)
    document["servers"] = [
        {"server": "snapshot", "type": "local", "format": "parquet", "path": str(parquet)}
    ]
    run = DataContract(
        data_contract_str=yaml.safe_dump(document, allow_unicode=True, sort_keys=False),
        inline_references=False,
    ).test()
    return [
        f"{c.result.value}: {c.name} ({c.field or 'table'}) {c.reason or ''}".strip()
        for c in run.checks
        if c.result != ResultEnum.passed
        and not (c.result == ResultEnum.warning and c.reason == UNCHECKED_TYPES)
    ]


def _breaks_a_release(entry: BreakingChangeEntry, perspective: Perspective) -> bool:
    if perspective == Perspective.CONSUMER:
        return (entry.level in (BreakingChangeLevel.ERROR, BreakingChangeLevel.WARNING)
                and entry.rule_id not in CONSUMER_MINOR_RULES)
    return entry.level == BreakingChangeLevel.ERROR and entry.rule_id in PRODUCER_BREAKING_RULES


def breaking_changes(released: Path, current: Path) -> list[str]:
    """The changes from the contract at ``released`` to the one at ``current`` that need a new
    major version: what datacontract-cli grades as an error (or cannot grade) from the
    consumer's side but :data:`CONSUMER_MINOR_RULES`, what it grades as an error from the
    producer's side by :data:`PRODUCER_BREAKING_RULES`, and the released columns no longer
    first and in their order (a reader by position would read the wrong column)."""
    before, after = _contract(released), _contract(current)
    found = [
        f"{entry.message} ({entry.path}, {perspective.value})"
        for perspective in Perspective
        for entry in before.breaking(after, perspective=perspective).entries
        if _breaks_a_release(entry, perspective)
    ]
    old = published_contract(released).column_names
    new = published_contract(current).column_names
    if set(old) <= set(new) and new[: len(old)] != old:
        found.append(f"released columns moved: {list(old)} are no longer the first columns, "
                     f"in order, of {list(new)}")
    return found


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def release_problems(released: Path, current: Path) -> list[str]:
    """Why ``current`` cannot follow ``released`` (empty when it can): a breaking change without
    a new major version, a changed contract without a greater version, a version going back."""
    old, new = published_contract(released), published_contract(current)
    problems = []
    if _version(new.version) < _version(old.version):
        problems.append(f"version {new.version} is older than the released {old.version}")
    changed = yaml.safe_load(old.raw) != yaml.safe_load(new.raw)
    if changed and _version(new.version) <= _version(old.version):
        problems.append(f"the contract changed but its version {new.version} is not greater "
                        f"than the released {old.version}")
    breaking = breaking_changes(released, current)
    if breaking and new.major <= old.major:
        problems.append(f"breaking changes need major version {old.major + 1}, not "
                        f"{new.version}: " + "; ".join(breaking))
    return problems
