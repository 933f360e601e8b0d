"""Importing another library without some of what it would import: the one mechanism behind
Great Expectations' lean import (:mod:`.gx`) and pandera's import without hypothesis
(:mod:`.pandera`).

Within :func:`imports_without`, a module named as hidden (or a submodule of it) is not found,
as if it were not installed, and a module named as loaded on first use, if not imported yet, is
bound by ``importlib.util.LazyLoader``: its code runs on its first attribute access. Modules
imported before keep their place: an import finder is asked only about modules not imported
yet."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any


class _Without(importlib.abc.MetaPathFinder):
    def __init__(self, hidden: Collection[str], loaded_on_first_use: Collection[str]) -> None:
        self._hidden = frozenset(hidden)
        self._lazy = frozenset(loaded_on_first_use)

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname.split(".")[0] in self._hidden:
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        if fullname not in self._lazy:
            return None
        for finder in sys.meta_path:
            if isinstance(finder, _Without) or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = importlib.util.LazyLoader(spec.loader)
                return spec
        return None


@contextmanager
def imports_without(*, hidden: Collection[str] = (),
                    loaded_on_first_use: Collection[str] = ()) -> Iterator[None]:
    """Within the block, the top-level packages ``hidden`` are not found and the modules
    ``loaded_on_first_use`` are loaded lazily (module docstring)."""
    finder = _Without(hidden, loaded_on_first_use)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
