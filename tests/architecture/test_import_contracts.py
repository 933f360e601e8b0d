"""The package rules (docs/architecture.md §1.3) are import-linter contracts in
``pyproject.toml``, which ``make test`` runs. Here: they hold on the code, and each kind of
breach is caught on a copy of it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from registry.config.settings import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(PROJECT_ROOT / "pyproject.toml")],
        cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=120, check=False,
    )


def test_the_code_keeps_every_contract() -> None:
    result = _lint(PROJECT_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    # A transform that reaches for storage.
    ("registry/build/merchants.py", "import registry.storage", "Transforms read no storage"),
    # A lower layer that imports a higher one, hidden inside a function.
    ("registry/ledger/records.py", "def _hidden():\n    import registry.publish",
     "each imports only those below it"),
    # The reader reaching into the pipeline.
    ("registry/snapshot/reader.py", "import registry.ledger", "only storage and its own"),
    # Storage reaching for the pipeline's settings: pydantic-settings, which the reader-only
    # install lacks.
    ("registry/storage/s3.py", "import registry.config.settings",
     "none of the pipeline extra's packages"),
    # Registry code importing a flow.
    ("registry/report/data.py", "import flows.summary", "only registry.cli imports flows"),
    # A cycle between two modules of one package.
    ("registry/ingest/tables.py", "import registry.ingest.readers", "No import cycles"),
])
def test_a_breach_is_caught(tmp_path: Path, module: str, line: str, contract: str) -> None:
    for package in ("registry", "flows"):
        shutil.copytree(PROJECT_ROOT / package, tmp_path / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / module, "a", encoding="utf-8") as source:
        source.write(f"\n\n{line}\n")
    result = _lint(tmp_path)
    assert result.returncode == 1
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
