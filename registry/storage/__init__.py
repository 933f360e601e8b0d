"""The one storage seam: local disk and S3 behind the same interface and semantics.

Keys are relative POSIX paths under the root URI (``file://PATH`` or ``s3://bucket/prefix``).
Both backends offer the same primitives: plain reads and writes, create-if-absent,
compare-and-swap on an etag, head, delete, paginated listing, and Parquet I/O through polars'
own object-store support. Nothing outside this package knows which backend is in use.

- :mod:`~registry.storage.base`: the :class:`Storage` interface, its errors, key checks;
- :mod:`~registry.storage.local`: :class:`LocalStorage`, a local folder;
- :mod:`~registry.storage.s3`: :class:`S3Storage`, with its retries of transient failures;
- :mod:`~registry.storage.probe`: the check that a store enforces create-if-absent and
  compare-and-swap;
- :mod:`~registry.storage.layout`: every storage key the registry uses (no I/O).

:func:`open_storage` picks the backend from the root URI.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from registry.config.storage_settings import StorageSettings, load_storage_settings
from registry.storage.base import (
    MAX_KEY_BYTES,
    PARQUET_WRITE,
    AlreadyExists,
    CredentialsMissing,
    InvalidKey,
    NotFound,
    ObjectDigest,
    ObjectInfo,
    PermissionDenied,
    PreconditionFailed,
    Storage,
    StorageError,
    StorageMisconfigured,
    StorageUnavailable,
    checked_key,
)
from registry.storage.local import LocalStorage
from registry.storage.probe import (
    COMPARE_AND_SWAP,
    CREATE_IF_ABSENT,
    PROBE_PREFIX,
    Capabilities,
    StoreLacksGuarantees,
    probe_capabilities,
)
from registry.storage.s3 import S3Storage, is_transient


def open_storage(settings: StorageSettings, uri: str | None = None) -> Storage:
    """The storage at ``uri`` (default: ``settings.storage_uri``). ``settings`` is the
    pipeline's :class:`~registry.config.settings.Settings` or the reader's storage settings.
    Raises :class:`StorageMisconfigured` for a URI of another scheme."""
    uri = uri or settings.storage_uri
    scheme = urlparse(uri).scheme
    if scheme == "s3":
        return S3Storage(uri, settings)
    if scheme == "file":
        path = uri[len("file://"):]
        return LocalStorage(Path(path).expanduser())
    if scheme == "" and uri:
        return LocalStorage(Path(uri).expanduser())
    raise StorageMisconfigured(
        f"unsupported storage URI {uri!r}: use file://PATH or s3://bucket/prefix"
    )


def open_storage_from_uri(uri: str | None = None) -> Storage:
    """The storage at ``uri`` (default: ``REGISTRY_STORAGE_URI``), with the environment's
    storage settings (S3 endpoint, credentials, timeouts): what a reader has, without the
    pipeline's settings or their dependencies."""
    return open_storage(load_storage_settings(), uri)


__all__ = [
    "COMPARE_AND_SWAP",
    "CREATE_IF_ABSENT",
    "MAX_KEY_BYTES",
    "PARQUET_WRITE",
    "PROBE_PREFIX",
    "AlreadyExists",
    "Capabilities",
    "CredentialsMissing",
    "InvalidKey",
    "LocalStorage",
    "NotFound",
    "ObjectDigest",
    "ObjectInfo",
    "PermissionDenied",
    "PreconditionFailed",
    "S3Storage",
    "Storage",
    "StorageError",
    "StorageMisconfigured",
    "StorageUnavailable",
    "StoreLacksGuarantees",
    "checked_key",
    "is_transient",
    "open_storage",
    "open_storage_from_uri",
    "probe_capabilities",
]
