"""pandera internals the ingest relies on (:mod:`registry.ingest.validation`).

Written for pandera >=0.35,<0.36 (:data:`SUPPORTED`), checked when :func:`imported` runs:

- ``pandera.polars`` imported with its data-synthesis strategies loaded without hypothesis
  (:data:`STRATEGIES`). The polars backend registers pandera's built-in checks on the first
  validation of a process, and registering them imports ``pandera.strategies``, which imports
  hypothesis whenever it is installed, for ``schema.strategy()`` and ``example()``, which the
  registry never calls. hypothesis is a test tool: the ``[pipeline]`` install has none, and in
  a development install it cost `registry ingest` 0.4-0.9 s of imports. The strategies module
  is imported with hypothesis hidden from it, as it runs without hypothesis installed. When
  hypothesis is already imported (a test session), nothing is hidden.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
from types import ModuleType

from registry._compat.imports import imports_without
from registry._compat.versions import SupportedVersions

SUPPORTED = SupportedVersions("pandera", "0.35", "0.36", patches=__name__)

# The module of pandera that imports hypothesis when it is installed (module docstring).
STRATEGIES = "pandera.strategies.base_strategies"
HIDDEN = "hypothesis"

_IMPORTING = threading.Lock()


def imported() -> ModuleType:
    """``pandera.polars``, imported once per process, its strategies module loaded without
    hypothesis unless hypothesis is imported already. Raises
    :class:`~registry._compat.versions.IncompatibleVersion` outside :data:`SUPPORTED`."""
    with _IMPORTING:
        return _imported()


@functools.cache
def _imported() -> ModuleType:
    SUPPORTED.check()
    if STRATEGIES not in sys.modules and HIDDEN not in sys.modules:
        with imports_without(hidden=(HIDDEN,)):
            importlib.import_module(STRATEGIES)
    return importlib.import_module("pandera.polars")
