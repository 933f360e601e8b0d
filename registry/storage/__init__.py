"""The one storage seam: local disk and S3 behind the same interface and semantics.

Keys are relative POSIX paths under the root URI (``file://PATH`` or ``s3://bucket/prefix``).
Both backends offer the same primitives: plain reads and writes, create-if-absent,
compare-and-swap on an etag, head, delete, paginated listing, and Parquet I/O through polars'
own object-store support. Nothing outside this module knows which backend is in use.

On S3 two clients do the I/O: boto3 for the primitives, and polars' Rust object_store client
for Parquet. Both retry transient failures (5xx, 409 conflicts, timeouts, resets) with the same
bounded backoff and give up with :class:`StorageUnavailable` naming the location.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import random
import re
import time
import unicodedata
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import boto3
import polars as pl
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from urllib3.exceptions import ProtocolError

from registry.config.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_KEY_BYTES = 1024
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_TMP_PREFIX = ".tmp-"


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


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    last_modified: datetime


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
    if any(part.startswith(_TMP_PREFIX) for part in parts):
        raise InvalidKey(f"object key uses the reserved prefix {_TMP_PREFIX!r}: {key!r}")
    return key


def _checked_prefix(prefix: str) -> str:
    if prefix == "":
        return prefix
    # A prefix may end in "/" or part-way through a name; validate what is there.
    body = prefix.rstrip("/")
    if body:
        checked_key(body)
    return prefix


class Storage(ABC):
    """Object storage under one root URI. Every method takes keys relative to that root."""

    root_uri: str

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The object's content. Raises :class:`NotFound`."""

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
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order, however many."""

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

    def write_parquet(self, frame: pl.DataFrame, key: str) -> None:
        """Write ``frame`` as Parquet at ``key`` directly through polars' object-store I/O.

        The object appears whole or not at all: one PUT, or for large files a multipart
        upload that S3 makes visible only when it completes (the parts of one that failed stay
        invisible until the bucket's AbortIncompleteMultipartUpload rule removes them). Raises
        :class:`StorageUnavailable` when transient failures outlast the retries.
        """
        uri = self.uri_for(checked_key(key))
        self._parquet_io(
            "write",
            key,
            lambda: frame.write_parquet(uri, storage_options=self.storage_options, **PARQUET_WRITE),
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


# --------------------------------------------------------------------------------------------
# Local disk


def _local_etag(stat: os.stat_result) -> str:
    # Every write goes through a fresh file and a rename, so (inode, mtime, size) changes on
    # every write; hashing would make head() cost a full read of large Parquet files.
    return f"{stat.st_ino:x}-{stat.st_mtime_ns:x}-{stat.st_size:x}"


class LocalStorage(Storage):
    """Storage in a local folder. Atomicity comes from rename, link and flock."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root_uri = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / checked_key(key)

    def _write_temp(self, path: Path, data: bytes) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return tmp

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NotFound(f"{self.root_uri}/{key}: no such object") from None

    def write_bytes(self, key: str, data: bytes) -> str:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        os.replace(tmp, path)
        return _local_etag(path.stat())

    def put_if_absent(self, key: str, data: bytes) -> str:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        try:
            # link() fails if the target exists, and publishes the complete file in one step.
            os.link(tmp, path)
        except FileExistsError:
            raise AlreadyExists(f"{self.root_uri}/{key} already exists") from None
        finally:
            tmp.unlink(missing_ok=True)
        return _local_etag(path.stat())

    def replace_if_match(self, key: str, data: bytes, etag: str) -> str:
        path = self._path(key)
        tmp = self._write_temp(path, data)
        try:
            with _dir_lock(path.parent):
                try:
                    current = _local_etag(path.stat())
                except FileNotFoundError:
                    raise PreconditionFailed(
                        f"{self.root_uri}/{key}: no object to replace"
                    ) from None
                if current != etag.strip('"'):
                    raise PreconditionFailed(
                        f"{self.root_uri}/{key}: etag is {current}, expected {etag}"
                    )
                os.replace(tmp, path)
                return _local_etag(path.stat())
        finally:
            tmp.unlink(missing_ok=True)

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(f"{self.root_uri}/{key}: no such object") from None
        if not path.is_file():
            raise NotFound(f"{self.root_uri}/{key}: no such object")
        return ObjectInfo(
            key=key,
            size=stat.st_size,
            etag=_local_etag(stat),
            last_modified=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        )

    def delete(self, key: str) -> None:
        path = self._path(key)
        path.unlink(missing_ok=True)
        # S3 has no folders; keep the local tree free of empty ones so listings match.
        parent = path.parent
        while parent != self.root:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        _checked_prefix(prefix)
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base if base else self.root
        if not start.is_dir():
            return
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(_TMP_PREFIX)]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(_TMP_PREFIX):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        # S3 orders keys by their UTF-8 bytes; do the same.
        for key in sorted(keys, key=lambda k: k.encode("utf-8")):
            try:
                yield self.head(key)
            except NotFound:  # deleted while listing
                continue

    def uri_for(self, key: str) -> str:
        return str(self.root / key)

    def write_parquet(self, frame: pl.DataFrame, key: str) -> None:
        # Write beside the target and rename, so a reader never sees half a file.
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            frame.write_parquet(tmp, **PARQUET_WRITE)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @property
    def storage_options(self) -> dict[str, str] | None:
        return None


@contextlib.contextmanager
def _dir_lock(directory: Path) -> Iterator[None]:
    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# --------------------------------------------------------------------------------------------
# S3


_TRANSIENT_CODES = frozenset(
    {
        "ConditionalRequestConflict",
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "Throttling",
        "ThrottlingException",
        "OperationAborted",
    }
)
_TRANSIENT_EXCEPTIONS = (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    ProtocolError,
    ConnectionResetError,
)
# Backoff between attempts, for both clients: the first wait, and the cap on doubling it.
_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 2.0

# polars raises object_store's failures as OSError (ConnectionResetError, TimeoutError...)
# whose message is all there is to classify them by. object_store itself retries 5xx,
# connection errors and timeouts (RetryConfig); what reaches us unretried is a 409 conflict
# on a PUT and a reply cut off mid-body. When its own retries ran out, the message says
# "after N retries, max_retries: N": retrying that again would square the attempts against
# a dead store.
_OBJECT_STORE_ERROR = "object-store error"
_OBJECT_STORE_STATUS = re.compile(r"non-2xx status code: (\d{3})")
_OBJECT_STORE_RETRIES = re.compile(r", after (\d+) retries, max_retries: (\d+)")
_OBJECT_STORE_CUT_OFF = ("error sending request", "body error")


# Sent with every PUT. A council writes into a bucket the pipeline owns, and on Ceph RGW (as on
# AWS buckets that still use ACLs) the bucket owner cannot read or copy an object another user
# uploaded unless the uploader grants this; the bucket policies in infra/policies/ refuse
# council writes without it. For the owner's own writes it changes nothing.
_OWNER_ACL = "bucket-owner-full-control"


def _status(err: ClientError) -> int:
    return int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: 5xx, 409 conflicts, throttling, timeouts, resets,
    from boto3 or from polars' object-store client."""
    if _OBJECT_STORE_ERROR in str(exc):
        return _object_store_transient(exc)
    if isinstance(exc, _TRANSIENT_EXCEPTIONS):
        return True
    if isinstance(exc, ClientError):
        status = _status(exc)
        return status >= 500 or status == 409 or _code(exc) in _TRANSIENT_CODES
    return False


def _object_store_transient(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    text = str(exc)
    status = _OBJECT_STORE_STATUS.search(text)
    if status:
        return int(status.group(1)) >= 500 or int(status.group(1)) == 409
    return any(cut in text for cut in _OBJECT_STORE_CUT_OFF)


def _retries_spent(exc: BaseException) -> bool:
    """polars' client already retried this failure as often as it was allowed to."""
    text = str(exc)
    retries = _OBJECT_STORE_RETRIES.search(text)
    return _OBJECT_STORE_ERROR in text and bool(retries) and (
        int(retries.group(1)) >= int(retries.group(2))
    )


def _md5_etag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


class S3Storage(Storage):
    """Storage under ``s3://bucket/prefix`` on AWS S3 or any S3-compatible store."""

    def __init__(self, uri: str, settings: Settings, *, client: Any | None = None):
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an s3://bucket[/prefix] URI: {uri!r}")
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        self.root_uri = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.settings = settings
        self.max_attempts = settings.s3_max_attempts
        self.client = client or boto3.client(
            "s3",
            endpoint_url=settings.aws_endpoint_url,
            region_name=settings.aws_region,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=_secret(settings.aws_secret_access_key),
            aws_session_token=_secret(settings.aws_session_token),
            config=Config(
                s3={"addressing_style": settings.s3_addressing_style},
                # S3-compatible stores (Ceph RGW, older MinIO) reject or mangle the CRC
                # trailers that botocore >= 1.36 sends by default.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                # Retries are ours (below), so that every call site retries the same way.
                retries={"total_max_attempts": 1},
                connect_timeout=settings.s3_connect_timeout_s,
                read_timeout=settings.s3_read_timeout_s,
            ),
        )

    # -- helpers -------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        checked_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _where(self, key: str) -> str:
        # For messages only: every method checks its key before it gets here, and a listing's
        # location is a prefix, possibly empty, which is not a key.
        return f"s3://{self.bucket}/{self.prefix}/{key}" if self.prefix else f"s3://{self.bucket}/{key}"

    def _call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        """Run ``fn`` with bounded exponential backoff on transient failures."""
        delay = _BACKOFF_FIRST_S
        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                if attempt == self.max_attempts or _retries_spent(exc):
                    raise StorageUnavailable(
                        f"{what} {self._where(key)} failed after {attempt} attempts: "
                        f"{_describe(exc)}"
                    ) from exc
                log.warning(
                    "%s %s: transient failure (%s), retry %d/%d",
                    what, self._where(key), _describe(exc), attempt, self.max_attempts - 1,
                )
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, _BACKOFF_MAX_S)
        raise AssertionError("unreachable")

    def _parquet_io(self, what: str, where: str, io: Callable[[], T]) -> T:
        return self._call(what, where, io)

    def _permanent(self, what: str, key: str, err: ClientError) -> StorageError:
        kind = PermissionDenied if _status(err) == 403 else StorageError
        return kind(f"{what} {self._where(key)}: {_code(err) or _status(err)} {err}")

    # -- primitives ----------------------------------------------------------------------

    def read_bytes(self, key: str) -> bytes:
        full = self._full(key)

        def get() -> bytes:
            return self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read()

        try:
            return self._call("read", key, get)
        except ClientError as err:
            if _code(err) in ("NoSuchKey", "404") or _status(err) == 404:
                raise NotFound(f"{self._where(key)}: no such object") from None
            raise self._permanent("read", key, err) from err

    def write_bytes(self, key: str, data: bytes) -> str:
        full = self._full(key)

        def put() -> str | None:
            return self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, ACL=_OWNER_ACL
            ).get("ETag")

        try:
            return self._etag_after_write(key, self._call("write", key, put))
        except ClientError as err:
            raise self._permanent("write", key, err) from err

    def put_if_absent(self, key: str, data: bytes) -> str:
        full = self._full(key)
        attempts = 0

        def put() -> str | None:
            nonlocal attempts
            attempts += 1
            return self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, IfNoneMatch="*", ACL=_OWNER_ACL
            ).get("ETag")

        try:
            return self._etag_after_write(key, self._call("create", key, put))
        except ClientError as err:
            if _status(err) == 412 or _code(err) == "PreconditionFailed":
                # An earlier attempt may have succeeded with its reply lost: if the object
                # holds exactly our bytes, the create did happen, and happened once.
                if attempts > 1 and self._holds(key, data):
                    return _md5_etag(data)
                raise AlreadyExists(f"{self._where(key)} already exists") from None
            raise self._permanent("create", key, err) from err

    def replace_if_match(self, key: str, data: bytes, etag: str) -> str:
        full = self._full(key)
        attempts = 0

        def put() -> str | None:
            nonlocal attempts
            attempts += 1
            # Ceph RGW rejects a quoted etag in If-Match even when it matches.
            return self.client.put_object(
                Bucket=self.bucket, Key=full, Body=data, IfMatch=etag.strip('"'), ACL=_OWNER_ACL
            ).get("ETag")

        try:
            return self._etag_after_write(key, self._call("replace", key, put))
        except ClientError as err:
            if _status(err) in (412, 404) or _code(err) in ("PreconditionFailed", "NoSuchKey"):
                if attempts > 1 and self._holds(key, data):
                    return _md5_etag(data)
                raise PreconditionFailed(
                    f"{self._where(key)}: etag is no longer {etag}; nothing was written"
                ) from None
            raise self._permanent("replace", key, err) from err

    def _etag_after_write(self, key: str, returned: str | None) -> str:
        # S3-compatible stores may answer a completed write without an ETag (Ceph RGW does
        # for CompleteMultipartUpload); HEAD then gives the right one.
        etag = (returned or "").strip('"')
        return etag or self.head(key).etag

    def _holds(self, key: str, data: bytes) -> bool:
        try:
            return self.head(key).etag == _md5_etag(data)
        except NotFound:
            return False

    def head(self, key: str) -> ObjectInfo:
        full = self._full(key)
        try:
            resp = self._call(
                "head", key, lambda: self.client.head_object(Bucket=self.bucket, Key=full)
            )
        except ClientError as err:
            if _status(err) == 404 or _code(err) in ("404", "NoSuchKey", "NotFound"):
                raise NotFound(f"{self._where(key)}: no such object") from None
            raise self._permanent("head", key, err) from err
        return ObjectInfo(
            key=key,
            size=int(resp["ContentLength"]),
            etag=str(resp["ETag"]).strip('"'),
            last_modified=resp["LastModified"],
        )

    def delete(self, key: str) -> None:
        full = self._full(key)
        try:
            self._call(
                "delete", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=full)
            )
        except ClientError as err:
            if _status(err) != 404:
                raise self._permanent("delete", key, err) from err

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        _checked_prefix(prefix)
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full_prefix}
            if token:
                kwargs["ContinuationToken"] = token
            try:
                page = self._call(
                    "list", prefix, lambda kw=kwargs: self.client.list_objects_v2(**kw)
                )
            except ClientError as err:
                raise self._permanent("list", prefix, err) from err
            for item in page.get("Contents", []):
                yield ObjectInfo(
                    key=item["Key"][strip:],
                    size=int(item["Size"]),
                    etag=str(item["ETag"]).strip('"'),
                    last_modified=item["LastModified"],
                )
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def uri_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}/{key}" if self.prefix else f"s3://{self.bucket}/{key}"

    @property
    def storage_options(self) -> dict[str, Any] | None:
        s = self.settings
        opts: dict[str, Any] = {
            "aws_region": s.aws_region,
            "aws_virtual_hosted_style_request": "false",
            # polars' object_store client retries by itself, per request; give it the same
            # attempts, backoff and timeouts as the boto3 client, and an overall deadline
            # no shorter than the boto3 path's worst case. (polars adds one more round of
            # its own after rebuilding the client; _call covers what escapes both.)
            "max_retries": self.max_attempts - 1,
            "retry_init_backoff_ms": int(_BACKOFF_FIRST_S * 1000),
            "retry_max_backoff_ms": int(_BACKOFF_MAX_S * 1000),
            "retry_timeout_ms": int(
                self.max_attempts * (s.s3_connect_timeout_s + s.s3_read_timeout_s) * 1000
            ),
            "connect_timeout": f"{int(s.s3_connect_timeout_s * 1000)}ms",
            # object_store's timeout covers a whole request, body included (botocore's read
            # timeout covers one socket read); polars' requests carry at most some tens of MB
            # (ranged reads, PUTs up to about 30 MB, upload parts), well within it.
            "timeout": f"{int(s.s3_read_timeout_s * 1000)}ms",
        }
        if s.s3_addressing_style == "virtual":
            opts["aws_virtual_hosted_style_request"] = "true"
        if s.aws_endpoint_url:
            opts["aws_endpoint_url"] = s.aws_endpoint_url
            if s.aws_endpoint_url.startswith("http://"):
                opts["aws_allow_http"] = "true"
        if s.aws_access_key_id:
            opts["aws_access_key_id"] = s.aws_access_key_id
        if s.aws_secret_access_key:
            opts["aws_secret_access_key"] = s.aws_secret_access_key.get_secret_value()
        if s.aws_session_token:
            opts["aws_session_token"] = s.aws_session_token.get_secret_value()
        return opts


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return f"HTTP {_status(exc)} {_code(exc)}"
    if _OBJECT_STORE_ERROR in str(exc):
        # Its first line names the request, the retries and the status or cause.
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return type(exc).__name__


def open_storage(settings: Settings, uri: str | None = None) -> Storage:
    """The storage at ``uri`` (default: ``settings.storage_uri``)."""
    uri = uri or settings.storage_uri
    scheme = urlparse(uri).scheme
    if scheme == "s3":
        return S3Storage(uri, settings)
    if scheme == "file":
        path = uri[len("file://"):]
        return LocalStorage(Path(path).expanduser())
    if scheme == "" and uri:
        return LocalStorage(Path(uri).expanduser())
    raise ValueError(f"unsupported storage URI {uri!r}: use file://PATH or s3://bucket/prefix")


# --------------------------------------------------------------------------------------------
# Capability probe


PROBE_PREFIX = "_probe/"
CREATE_IF_ABSENT = "create-if-absent"
COMPARE_AND_SWAP = "compare-and-swap"


class StoreLacksGuarantees(StorageError):
    """The store does not enforce a guarantee that publishing relies on; nothing was published.

    ``missing`` names the guarantees (:data:`CREATE_IF_ABSENT`, :data:`COMPARE_AND_SWAP`).
    """

    def __init__(self, root_uri: str, missing: tuple[str, ...]):
        # Both values go to Exception.args so the error survives pickling (Prefect results).
        super().__init__(root_uri, tuple(missing))
        self.root_uri = root_uri
        self.missing = tuple(missing)

    def __str__(self) -> str:
        hint = ""
        if CREATE_IF_ABSENT in self.missing:
            hint = (
                " A versioned bucket is the usual cause (Ceph RGW ignores If-None-Match there):"
                " use an unversioned bucket for the registry."
            )
        return (
            f"{self.root_uri} does not enforce {' and '.join(self.missing)}; refusing to "
            f"publish, since concurrent or retried writers could overwrite a committed "
            f"snapshot or the latest pointer.{hint}"
        )


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What :func:`probe_capabilities` saw a store enforce."""

    root_uri: str
    create_if_absent: bool
    compare_and_swap: bool

    @property
    def missing(self) -> tuple[str, ...]:
        held = {CREATE_IF_ABSENT: self.create_if_absent, COMPARE_AND_SWAP: self.compare_and_swap}
        return tuple(name for name, ok in held.items() if not ok)

    def require(self) -> Capabilities:
        """Return ``self`` if every guarantee holds, else raise :class:`StoreLacksGuarantees`."""
        if self.missing:
            raise StoreLacksGuarantees(self.root_uri, self.missing)
        return self


def probe_capabilities(storage: Storage, scratch_prefix: str = PROBE_PREFIX) -> Capabilities:
    """Check, by trying them, that ``storage`` enforces create-if-absent and compare-and-swap.

    Publication relies on both (DESIGN.md section 7), and some stores accept the conditional
    headers yet do not honour them: on a versioned Ceph RGW bucket every ``If-None-Match: *``
    write wins and every ``If-Match`` fails, even with the current etag. The publisher
    therefore calls ``probe_capabilities(storage).require()`` before it writes anything, and
    refuses to publish with :class:`StoreLacksGuarantees`.

    Under ``{scratch_prefix}{random id}/`` the probe

    - creates an object with :meth:`Storage.put_if_absent`, then tries again on the same key:
      create-if-absent holds if the second try raises :class:`AlreadyExists` and the first
      bytes survive;
    - replaces the object with its current etag (must succeed), then with that now stale etag,
      and replaces a missing key (both must raise :class:`PreconditionFailed` and write
      nothing): compare-and-swap holds if all three behave.

    It deletes its scratch objects before returning, also when it raises. (On a versioned
    bucket their noncurrent versions remain, as after any delete there.)

    The probe sees whether a store enforces the conditions, not whether it does so atomically
    under concurrency: moto passes it but checks without a lock. The race tests against Ceph
    RGW cover atomicity.

    Returns the :class:`Capabilities` seen. Raises :class:`StorageError` (for example
    :class:`StorageUnavailable`, or a permission error) when the store cannot be probed at all;
    that is no verdict on its guarantees.
    """
    base = f"{_checked_prefix(scratch_prefix)}{uuid.uuid4().hex}/"
    cell, absent = f"{base}cell", f"{base}absent"
    try:
        storage.put_if_absent(cell, b"first")
        try:
            storage.put_if_absent(cell, b"second")
            create_if_absent = False
        except AlreadyExists:
            create_if_absent = storage.read_bytes(cell) == b"first"

        current = storage.head(cell).etag
        try:
            storage.replace_if_match(cell, b"third", current)
            fresh_etag_accepted = True
        except PreconditionFailed:
            fresh_etag_accepted = False
        try:
            storage.replace_if_match(cell, b"fourth", current)
            stale_etag_refused = False
        except PreconditionFailed:
            stale_etag_refused = storage.read_bytes(cell) != b"fourth"
        try:
            storage.replace_if_match(absent, b"fifth", _md5_etag(b"never written"))
            missing_refused = False
        except PreconditionFailed:
            missing_refused = not storage.exists(absent)
    finally:
        storage.delete(cell)
        storage.delete(absent)
    return Capabilities(
        root_uri=storage.root_uri,
        create_if_absent=create_if_absent,
        compare_and_swap=fresh_etag_accepted and stale_etag_refused and missing_refused,
    )


__all__ = [
    "COMPARE_AND_SWAP",
    "CREATE_IF_ABSENT",
    "AlreadyExists",
    "Capabilities",
    "InvalidKey",
    "LocalStorage",
    "NotFound",
    "ObjectInfo",
    "PermissionDenied",
    "PreconditionFailed",
    "S3Storage",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "StoreLacksGuarantees",
    "checked_key",
    "is_transient",
    "open_storage",
    "probe_capabilities",
]
