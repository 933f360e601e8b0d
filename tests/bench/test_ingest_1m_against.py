"""``bench.ingest_1m --against REV``: this checkout and a worktree of REV take turns on the same
input, and every round is kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.ingest_1m import _git

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_against_a_revision_runs_both_sides_on_one_input_and_removes_its_worktree(tmp_path) -> None:
    try:
        head = _git("rev-parse", "HEAD")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: --against needs git worktrees")
    worktrees_before = _git("worktree", "list", "--porcelain")
    out = tmp_path / "against.json"
    subprocess.run(
        [sys.executable, "-m", "bench.ingest_1m", "--rows", "1500", "--repeat", "1",
         "--rounds", "1", "--against", "HEAD", "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    )
    result = json.loads(out.read_text())
    assert result["before"]["commit"] == head
    assert result["after"]["commit"] == head
    assert result["rounds"] == 1
    before, after = result["rounds_reports"]["before"], result["rounds_reports"]["after"]
    assert len(before) == len(after) == 1
    # The same input, so the same outcome on both sides.
    outcomes = {(r["rows"], r["accepted"], r["quarantined"]) for r in before + after}
    assert len(outcomes) == 1
    assert next(iter(outcomes))[0] == 1500
    for side in ("before", "after"):
        median = result["median"][side]
        assert median["floor"]["wall_s"] > 0
        assert median["ingest"]["wall_ratio"] > 1
    assert _git("worktree", "list", "--porcelain") == worktrees_before
