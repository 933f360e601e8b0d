"""The library versions a patch was written for, checked against the installed one.

A patch of another library's internals relies on code that library may change in any release.
Each patch names the versions it was written and checked for (:class:`SupportedVersions`) and
checks the installed version when it is applied: outside that range it raises
:class:`IncompatibleVersion`, so an upgrade fails at once (first in the tests) instead of the
patch silently doing nothing or something else."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import metadata

_RELEASE = re.compile(r"\d+(?:\.\d+)*")


class IncompatibleVersion(RuntimeError):
    """The installed version of a patched library is outside the range the patch was written
    for."""


@functools.cache
def installed_version(library: str) -> str:
    """The installed version of the distribution ``library`` (as named on PyPI), read once per
    process: the gate checks it for every suite run and Data Docs site, and each read searches
    the installed distributions' metadata (2 ms)."""
    return metadata.version(library)


def release(version: str) -> tuple[int, ...]:
    """The numeric release of ``version``: ``1.24.1`` and ``1.24.1rc2`` give (1, 24, 1)."""
    match = _RELEASE.match(version)
    if match is None:
        raise ValueError(f"not a version number: {version!r}")
    return tuple(int(part) for part in match.group().split("."))


@dataclass(frozen=True)
class SupportedVersions:
    """The versions ``at_least`` (included) up to ``below`` (excluded) of ``library``, for
    which the patches in ``patches`` (a module path, for the message) were written."""

    library: str
    at_least: str
    below: str
    patches: str

    def __str__(self) -> str:
        return f">={self.at_least},<{self.below}"

    def check(self, installed: str | None = None) -> str:
        """Return the installed version (``installed`` when given); raise
        :class:`IncompatibleVersion` when it is outside the range."""
        version = installed if installed is not None else installed_version(self.library)
        if not release(self.at_least) <= release(version) < release(self.below):
            raise IncompatibleVersion(
                f"{self.library} {version} is installed, but {self.patches} patches its "
                f"internals as they are in {self.library} {self}: check those patches against "
                f"{self.library} {version} and widen the range, or install {self.library}{self}"
            )
        return version
