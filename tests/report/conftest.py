"""The report tests share one published world (see report_world.py)."""

from __future__ import annotations

import pytest
from report_world import World, build_world


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("report") / "root")
