"""Reading the registry's YAML files (contracts, regions, score model, quality config).

PyYAML's C loader (libyaml, in PyYAML's wheels) parses the same documents as its pure-Python
safe loader about ten times faster; the contracts are read on every ingest and publication.
"""

from __future__ import annotations

from typing import IO, Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(stream: str | bytes | IO[str] | IO[bytes]) -> Any:
    """``yaml.safe_load``, with the C loader when PyYAML has it."""
    return yaml.load(stream, Loader=_LOADER)
