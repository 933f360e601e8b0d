"""A storage seam that counts the batch records read through it, and the objects read through
whole to be hashed: for tests of what a question costs in reads (the held batches, a run's
scorecards, a publication's verified snapshots), on every backend."""

from __future__ import annotations

from collections import Counter
from typing import Any

from registry.storage import Storage, layout


class CountingReads:
    """``storage`` as the ledger sees it, counting the batch records it reads and the listings
    of the releases."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self.record_reads = 0
        self.release_listings = 0
        self.digests: Counter[str] = Counter()
        # Reads of the commit log's entries, and HEADs, by key.
        self.log_reads: Counter[str] = Counter()
        self.heads: Counter[str] = Counter()

    def list(self, prefix: str, *args: Any, **kwargs: Any) -> Any:
        if prefix.startswith(layout.RELEASES_PREFIX):
            self.release_listings += 1
        return self._storage.list(prefix, *args, **kwargs)

    def read_bytes(self, key: str) -> bytes:
        if key.startswith(layout.BATCHES_PREFIX):
            self.record_reads += 1
        if key.startswith(layout.LOG_PREFIX):
            self.log_reads[key] += 1
        return self._storage.read_bytes(key)

    def head(self, key: str) -> Any:
        self.heads[key] += 1
        return self._storage.head(key)

    def exists(self, key: str) -> bool:
        self.heads[key] += 1
        return self._storage.exists(key)

    def digest(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self.digests[key] += 1
        return self._storage.digest(key, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)


# Wherever the registry checks that it was given a storage seam, this is one.
Storage.register(CountingReads)
