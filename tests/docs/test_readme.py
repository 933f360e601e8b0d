"""The README is a newcomer's page: short enough to read, and its two commands are the ones a
fresh machine and CI run."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_stays_short() -> None:
    assert len(README) <= 12_000, f"README.md has {len(README):,} characters; move depth to docs/"


def test_ci_runs_the_readmes_test_command() -> None:
    assert "make demo" in README and "make test" in README
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "make test" in [line.strip() for line in ci]
