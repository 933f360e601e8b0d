"""Storage in a local folder, with the same semantics as S3.

Every write goes through a temporary file beside its target: ``os.replace`` for plain writes,
a hard link for create-if-absent, a directory lock for compare-and-swap.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from registry.storage.base import (
    DIGEST_CHUNK_BYTES,
    PARQUET_WRITE,
    TMP_PREFIX,
    AlreadyExists,
    NotFound,
    ObjectDigest,
    ObjectInfo,
    PreconditionFailed,
    Storage,
    checked_key,
    checked_prefix,
    digest_of,
)


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
        tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
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

    def digest(self, key: str, *, tail_bytes: int = 0) -> ObjectDigest:
        try:
            with self._path(key).open("rb") as file:
                return digest_of(iter(lambda: file.read(DIGEST_CHUNK_BYTES), b""), tail_bytes)
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

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        checked_prefix(prefix)
        after = start_after.encode("utf-8") if start_after is not None else None
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base if base else self.root
        if not start.is_dir():
            return
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not d.startswith(TMP_PREFIX)]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(TMP_PREFIX):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix) and (after is None or key.encode("utf-8") > after):
                    keys.append(key)
        # S3 orders keys by their UTF-8 bytes; do the same.
        for key in sorted(keys, key=lambda k: k.encode("utf-8")):
            try:
                yield self.head(key)
            except NotFound:  # deleted while listing
                continue

    def uri_for(self, key: str) -> str:
        return str(self.root / key)

    def write_parquet(self, frame: pl.DataFrame, key: str, **options: Any) -> None:
        # Write beside the target and rename, so a reader never sees half a file.
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            frame.write_parquet(tmp, **(PARQUET_WRITE | options))
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
