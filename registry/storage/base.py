"""The storage interface every backend implements: :class:`Storage`, its errors, object keys.

Keys are relative POSIX paths under the root URI (``file://PATH`` or ``s3://bucket/prefix``),
checked by :func:`checked_key` before any backend uses them.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import polars as pl

T = TypeVar("T")

MAX_KEY_BYTES = 1024
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# Names starting with this are a backend's own temporary files; no key may use it.
TMP_PREFIX = ".tmp-"


# Staged and quarantined batches are written once and read whole: the registry build keeps
# each key's latest row before it filters anything, so min/max statistics would let it skip
# nothing, and computing them for every column is about a fifth of the write's CPU on a
# million merchant rows. Null counts stay (cheap, and they answer "is this column empty"
# without reading it). zstd level 1 costs about 30% less CPU than polars' default level 3
# for the same size; row groups of 512Ki rows instead of 256Ki cost less again, and a batch
# is read whole anyway (bench/ingest_1m.py measures the write).
PARQUET_WRITE: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 1,
    "statistics": {"min": False, "max": False, "distinct_count": False, "null_count": True},
    "row_group_size": 512 * 1024,
}


class StorageError(Exception):
    """Base class for every storage failure. The message names the location."""


class InvalidKey(StorageError, ValueError):
    """A key that is not a safe relative path (``..``, absolute, control characters...)."""


class NotFound(StorageError, KeyError):
    """The object does not exist."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0]) if self.args else "not found"


class AlreadyExists(StorageError):
    """``put_if_absent`` found an object already at the key."""


class PreconditionFailed(StorageError):
    """``replace_if_match`` found a different etag (or no object): nothing was written."""


class StorageUnavailable(StorageError):
    """A transient failure persisted through every retry."""


class PermissionDenied(StorageError):
    """The store refused the caller (HTTP 403): a bucket policy or ACL forbids this access."""


class CredentialsMissing(PermissionDenied):
    """No credentials to sign S3 requests with: none in the environment or AWS config."""


class StorageMisconfigured(StorageError):
    """The storage settings point nowhere usable: a root URI of an unknown scheme, or a bucket
    that does not exist."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime


# What :meth:`Storage.digest` holds of an object at a time.
DIGEST_CHUNK_BYTES = 8 << 20


@dataclass(frozen=True, slots=True)
class ObjectDigest:
    """An object read through once (:meth:`Storage.digest`): its size, its SHA-256 and its
    last bytes."""

    size: int
    sha256: str
    tail: bytes


def digest_of(chunks: Iterable[bytes], tail_bytes: int = 0) -> ObjectDigest:
    """The :class:`ObjectDigest` of the bytes ``chunks`` give in order, keeping their last
    ``tail_bytes`` bytes: memory holds one chunk and the tail."""
    sha = hashlib.sha256()
    size = 0
    tail = bytearray()
    for chunk in chunks:
        sha.update(chunk)
        size += len(chunk)
        if tail_bytes:
            tail += chunk[-tail_bytes:]
            del tail[:-tail_bytes]
    return ObjectDigest(size=size, sha256=sha.hexdigest(), tail=bytes(tail))


def checked_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise :class:`InvalidKey`.

    Refused: empty keys, absolute paths, ``.``/``..``/empty segments, backslashes, control
    characters, keys not in Unicode NFC form, and keys over 1024 UTF-8 bytes (the S3 limit).
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"empty object key: {key!r}")
    if key.startswith("/") or "\\" in key:
        raise InvalidKey(f"object key must be a relative POSIX path: {key!r}")
    if _CONTROL_CHARS.search(key):
        raise InvalidKey(f"object key contains control characters: {key!r}")
    if unicodedata.normalize("NFC", key) != key:
        raise InvalidKey(f"object key is not in Unicode NFC form: {key!r}")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is longer than {MAX_KEY_BYTES} bytes: {key[:80]!r}...")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts[:-1]) or parts[-1] in (".", ".."):
        raise InvalidKey(f"object key has an empty, '.' or '..' segment: {key!r}")
    if any(part.startswith(TMP_PREFIX) for part in parts):
        raise InvalidKey(f"object key uses the reserved prefix {TMP_PREFIX!r}: {key!r}")
    return key


def checked_prefix(prefix: str) -> str:
    """Return ``prefix`` if what it holds is a safe key (see :func:`checked_key`), else raise
    :class:`InvalidKey`. The empty prefix (the whole root) is allowed."""
    if prefix == "":
        return prefix
    # A prefix may end in "/" or part-way through a name; validate what is there.
    body = prefix.rstrip("/")
    if body:
        checked_key(body)
    return prefix


def md5_etag(data: bytes) -> str:
    """The etag S3 gives an object holding ``data`` written in one PUT."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class Storage(ABC):
    """Object storage under one root URI. Every method takes keys relative to that root."""

    root_uri: str

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The object's content. Raises :class:`NotFound`."""

    @abstractmethod
    def digest(self, key: str, *, tail_bytes: int = 0) -> ObjectDigest:
        """The object's size and SHA-256, and its last ``tail_bytes`` bytes (a Parquet file's
        footer), read through as a stream: memory holds a chunk
        (:data:`DIGEST_CHUNK_BYTES`) and the tail, however large the object. A read cut off
        part-way is read again from the start. Raises :class:`NotFound`."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> str:
        """Create or overwrite the object atomically; return its etag."""

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create the object only if no object exists at ``key``; return its etag.

        Raises :class:`AlreadyExists` (and writes nothing) when the key is taken.
        When a retried attempt finds the key taken after an earlier attempt's reply was lost,
        an object with exactly ``data`` is taken to be this call's own write. So ``data``
        must be unique to the writer (the registry's claims, log entries and pointers carry
        their writer's batch or snapshot id and time), or two writers of the same bytes may
        both be told they won.
        """

    @abstractmethod
    def replace_if_match(self, key: str, data: bytes, etag: str) -> str:
        """Overwrite the object only if its current etag is ``etag``; return the new etag.

        Raises :class:`PreconditionFailed` and leaves the object untouched otherwise,
        including when the object does not exist. As with :meth:`put_if_absent`, a retry
        after a lost reply recognises its own write by content, so ``data`` must be unique
        to the writer.
        """

    @abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Size, etag and modification time. Raises :class:`NotFound`."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object. Deleting a missing object is not an error."""

    @abstractmethod
    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order (UTF-8 bytes), however
        many; with ``start_after``, only the keys that sort after it (S3's ``StartAfter``)."""

    @abstractmethod
    def uri_for(self, key: str) -> str:
        """The location polars (or any other reader) opens for ``key``."""

    @property
    @abstractmethod
    def storage_options(self) -> dict[str, str] | None:
        """Options that let polars reach :meth:`uri_for` locations directly."""

    def exists(self, key: str) -> bool:
        try:
            self.head(key)
        except NotFound:
            return False
        return True

    def write_parquet(self, frame: pl.DataFrame, key: str, **options: Any) -> None:
        """Write ``frame`` as Parquet at ``key`` directly through polars' object-store I/O,
        with :data:`PARQUET_WRITE`'s options (``options`` override them).

        The object appears whole or not at all: one PUT, or for large files a multipart
        upload that S3 makes visible only when it completes (the parts of one that failed stay
        invisible until the bucket's AbortIncompleteMultipartUpload rule removes them). Raises
        :class:`StorageUnavailable` when transient failures outlast the retries.
        """
        uri = self.uri_for(checked_key(key))
        self._parquet_io(
            "write",
            key,
            lambda: frame.write_parquet(uri, storage_options=self.storage_options,
                                        **(PARQUET_WRITE | options)),
        )

    def read_parquet(self, key: str) -> pl.DataFrame:
        """The Parquet object at ``key``. Raises :class:`StorageUnavailable` as above."""
        uri = self.uri_for(checked_key(key))
        return self._parquet_io(
            "read", key, lambda: pl.read_parquet(uri, storage_options=self.storage_options)
        )

    def scan_parquet(self, pattern: str, **kwargs: Any) -> pl.LazyFrame:
        """Lazily scan one key or a glob (``staged/merchants/**/*.parquet``).

        Nothing is read until the frame is collected (or its schema asked for); do that
        through :meth:`retried_read` so that transient failures of those reads are retried.
        """
        return pl.scan_parquet(
            self.uri_for(pattern), storage_options=self.storage_options, **kwargs
        )

    def retried_read(self, where: str, read: Callable[[], T]) -> T:
        """The result of ``read``, a polars read of this storage's Parquet (``collect`` or
        ``collect_schema`` of a :meth:`scan_parquet` query), run again from the start on a
        transient failure. ``where`` (a key or prefix) names what is read, for the error.
        Raises :class:`StorageUnavailable` when the failures outlast the retries."""
        return self._parquet_io("read", where, read)

    def _parquet_io(self, what: str, where: str, io: Callable[[], T]) -> T:
        # Local disk has no transient failures to retry.
        return io()
