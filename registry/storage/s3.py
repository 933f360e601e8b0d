"""Storage under ``s3://bucket/prefix`` on AWS S3 or any S3-compatible store (Ceph RGW, MinIO).

Two clients do the I/O: boto3 for the primitives, and polars' Rust object_store client for
Parquet. Both retry transient failures (5xx, 409 conflicts, timeouts, resets) with the same
bounded backoff and give up with :class:`StorageUnavailable` naming the location;
:func:`is_transient` says which failures those are.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    IncompleteReadError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)
from urllib3.exceptions import ProtocolError

from registry.config.storage_settings import StorageSettings
from registry.storage.base import (
    DIGEST_CHUNK_BYTES,
    AlreadyExists,
    CredentialsMissing,
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
    checked_prefix,
    digest_of,
    md5_etag,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


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
    # A reply's body cut off part-way (the connection reset, or fewer bytes than announced).
    ResponseStreamingError,
    IncompleteReadError,
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


class S3Storage(Storage):
    """Storage under ``s3://bucket/prefix`` on AWS S3 or any S3-compatible store.

    Besides the :class:`Storage` errors, any call raises :class:`CredentialsMissing` when no
    credentials are configured, and :class:`StorageMisconfigured` when the bucket does not
    exist."""

    def __init__(self, uri: str, settings: StorageSettings, *, client: Any | None = None):
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise StorageMisconfigured(f"not an s3://bucket[/prefix] URI: {uri!r}")
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
            except NoCredentialsError as exc:
                raise CredentialsMissing(
                    f"{what} {self._where(key)}: no credentials to sign the request with"
                ) from exc
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
        kind = (PermissionDenied if _status(err) == 403
                else StorageMisconfigured if _code(err) == "NoSuchBucket" else StorageError)
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

    def digest(self, key: str, *, tail_bytes: int = 0) -> ObjectDigest:
        full = self._full(key)

        def get() -> ObjectDigest:
            body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
            with body:
                return digest_of(body.iter_chunks(DIGEST_CHUNK_BYTES), tail_bytes)

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
                    return md5_etag(data)
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
                    return md5_etag(data)
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
            return self.head(key).etag == md5_etag(data)
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

    def list(self, prefix: str = "", *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        checked_prefix(prefix)
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        strip = len(self.prefix) + 1 if self.prefix else 0
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full_prefix}
            if start_after is not None:
                kwargs["StartAfter"] = (f"{self.prefix}/{start_after}" if self.prefix
                                        else start_after)
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
