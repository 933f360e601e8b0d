"""``bench.ingest_steps``: every step of the ingest timed alone, and the least ratio to the floor
that their CPU time allows on this machine's cores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.ingest_steps import WORK

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_steps_are_timed_and_their_cpu_time_bounds_the_ratio(tmp_path) -> None:
    out = tmp_path / "steps.json"
    printed = subprocess.run(
        [sys.executable, "-m", "bench.ingest_steps", "--rows", "2000", "--repeat", "1",
         "--out", str(out)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    result = json.loads(out.read_text())
    steps, cores = result["steps"], result["cores"]
    assert result["rows"] == 2000
    # The rules and split are what is left of checked_upload's time after its read and its
    # normalising: negative if those were timed wrong (or ran beside each other).
    for name in ("floor", "ingest_in_process", "ingest_in_worker", "read_table_in_process",
                 "read_table_in_worker", *(s for s in WORK if s != "read_table")):
        assert steps[name]["wall_s"] >= 0 and steps[name]["cpu_s"] >= 0, name
    for where in ("in_process", "in_worker"):
        bound = result["bound"][where]
        work = sum(steps[f"read_table_{where}" if s == "read_table" else s]["cpu_s"]
                   for s in WORK)
        assert bound["work_cpu_s"] == pytest.approx(work, abs=0.002)
        assert bound["least_wall_s"] == pytest.approx(work / cores, abs=0.002)
        assert bound["bound_ratio"] == pytest.approx(
            work / cores / steps["floor"]["wall_s"], rel=0.01, abs=0.01)
        ingest = steps[f"ingest_{where}"]
        assert bound["ingest_bound_ratio"] == pytest.approx(
            ingest["cpu_s"] / cores / steps["floor"]["wall_s"], rel=0.01, abs=0.01)
        assert bound["ingest_wall_s"] == ingest["wall_s"]
        assert f"table read {where.replace('_', ' ')}:" in printed
