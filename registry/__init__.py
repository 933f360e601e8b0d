"""Yangtze River Delta imported-goods assurance registry.

Downstream apps read published snapshots with :func:`open_snapshot`, which verifies every
checksum and returns polars LazyFrames.
"""

__version__ = "0.1.0"

# __version__ comes first: registry.publish imports it from here.
from registry.reader import (
    Snapshot,
    SnapshotError,
    SnapshotIntegrityError,
    list_snapshots,
    open_snapshot,
    verify_snapshot,
)

__all__ = [
    "Snapshot",
    "SnapshotError",
    "SnapshotIntegrityError",
    "__version__",
    "list_snapshots",
    "open_snapshot",
    "verify_snapshot",
]
