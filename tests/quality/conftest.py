"""Fixtures of the quality tests."""

from __future__ import annotations

import pytest

from registry.quality import runner


@pytest.fixture
def site_builds(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The prefixes of the runs of each Data Docs build (:func:`runner.data_docs_sites`), in
    the order of the builds."""
    builds: list[list[str]] = []
    build = runner.data_docs_sites

    def counted(runs, folder):
        builds.append(list(runs))
        return build(runs, folder)

    monkeypatch.setattr(runner, "data_docs_sites", counted)
    return builds
