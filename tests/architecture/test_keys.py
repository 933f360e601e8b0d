"""Only ``registry.storage.layout`` spells storage keys, and only ``registry.ledger`` touches the
ledger's keys (docs/architecture.md §1). import-linter holds the package rules; these two
facts are about string literals and single names, which it cannot see, so they are held here
on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from registry.config.settings import PROJECT_ROOT

PACKAGES = ("registry", "flows")
LAYOUT = PROJECT_ROOT / "registry" / "storage" / "layout.py"
LEDGER = PROJECT_ROOT / "registry" / "ledger"
# The first folder of every key the registry writes.
KEY_ROOTS = ("landing/", "raw/", "staged/", "quarantine/", "ledger/", "reports/",
             "registry/snapshots", "registry/_log", "registry/latest")
LEDGER_NAMES = frozenset({
    "CLAIMS_PREFIX", "BATCHES_PREFIX", "RELEASES_PREFIX", "SEEN_PREFIX",
    "claim_key", "batch_record_key", "release_key", "seen_key",
})


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (PROJECT_ROOT / package).rglob("*.py"))


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def key_literals(source: str) -> list[tuple[int, str]]:
    """String literals (docstrings aside) that start with one of the registry's key roots."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            if node.value.startswith(KEY_ROOTS):
                found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr) and node.values:
            skip |= {id(part) for part in node.values}
            first = node.values[0]
            if (isinstance(first, ast.Constant) and isinstance(first.value, str)
                    and first.value.startswith(KEY_ROOTS)):
                found.append((node.lineno, first.value))
    return found


def ledger_names_used(source: str) -> set[str]:
    """Ledger key names taken from the layout: imported, or read as ``layout.NAME``."""
    used = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("layout"):
            used |= {alias.name for alias in node.names} & LEDGER_NAMES
        elif isinstance(node, ast.Attribute) and node.attr in LEDGER_NAMES:
            used.add(node.attr)
    return used


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_only_the_layout_spells_keys(path: Path) -> None:
    if path == LAYOUT:
        return
    assert key_literals(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_only_the_ledger_touches_ledger_keys(path: Path) -> None:
    if path == LAYOUT or LEDGER in path.parents:
        return
    assert ledger_names_used(path.read_text(encoding="utf-8")) == set()


def test_the_checks_see_a_spelled_key_and_a_borrowed_ledger_key() -> None:
    source = (
        'from registry.storage.layout import claim_key\n'
        'PREFIX = "staged/"\n'
        'def key(run):\n    return f"reports/scorecards/{run}.json"\n'
    )
    assert key_literals(source) == [(2, "staged/"), (4, "reports/scorecards/")]
    assert ledger_names_used(source) == {"claim_key"}
