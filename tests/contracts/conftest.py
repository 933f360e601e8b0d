"""The contract tests share one published world (see contracts_world.py)."""

from __future__ import annotations

import pytest
from contracts_world import Published, build_world


@pytest.fixture(scope="package")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    return build_world(tmp_path_factory.mktemp("contracts"))
