"""Yangtze River Delta imported-goods assurance registry.

Downstream apps read published snapshots with :func:`open_snapshot`, which verifies every
checksum and returns polars LazyFrames.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Snapshot",
    "SnapshotError",
    "SnapshotIntegrityError",
    "__version__",
    "list_snapshots",
    "open_snapshot",
    "verify_snapshot",
]

if TYPE_CHECKING:
    from registry.snapshot.formats import SnapshotError, SnapshotIntegrityError
    from registry.snapshot.reader import Snapshot, list_snapshots, open_snapshot, verify_snapshot

_FORMAT_NAMES = ("SnapshotError", "SnapshotIntegrityError")


def __getattr__(name: str) -> Any:
    # The reader (and with it polars and boto3) loads on first use, not with every submodule:
    # the upload-reading worker process imports registry.ingest.readers alone, once per worker.
    # The errors need only the formats, which load neither.
    if name in _FORMAT_NAMES:
        from registry.snapshot import formats

        return getattr(formats, name)
    if name in __all__:
        from registry.snapshot import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
