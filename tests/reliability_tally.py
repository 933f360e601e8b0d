"""Sums the numeric ``record_property`` values of passing tests across the session, so the
reliability page (docs/reliability.md) can quote what the suite actually saw.

At the end of a run the totals are printed ("reliability tallies") and written to
``reliability.json`` in pytest's base temporary folder (``--basetemp`` to choose it).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

_totals: Counter[str] = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call" or not report.passed:
        return
    for name, value in report.user_properties:
        if isinstance(value, int | float) and not isinstance(value, bool):
            _totals[name] += value


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    if not _totals:
        return
    factory = getattr(config, "_tmp_path_factory", None)
    path = factory.getbasetemp() / "reliability.json" if factory else None
    if path is not None:
        path.write_text(json.dumps(dict(sorted(_totals.items())), indent=2) + "\n")
    terminalreporter.section("reliability tallies")
    for name, value in sorted(_totals.items()):
        terminalreporter.write_line(f"{name}: {value}")
    if path is not None:
        terminalreporter.write_line(f"(written to {path})")
