"""Transient S3 failures are retried with backoff; persistent ones give a clear error."""

from __future__ import annotations

import pytest
from botocore.awsrequest import AWSResponse

from registry.settings import Settings
from registry.storage import AlreadyExists, S3Storage, StorageError, StorageUnavailable


def inject_errors(storage: S3Storage, statuses: list[int]) -> list[str]:
    """Make the next calls fail with these HTTP statuses (before reaching the server)."""
    pending = iter(statuses)
    seen: list[str] = []

    def before_send(request, **_: object):
        status = next(pending, None)
        if status is None:
            return None
        seen.append(request.method)
        body = (
            b"<?xml version='1.0'?><Error><Code>ServiceUnavailable</Code>"
            b"<Message>injected</Message></Error>"
        )
        if status == 409:
            body = body.replace(b"ServiceUnavailable", b"ConditionalRequestConflict")
        return _response(request.url, status, body)

    storage.client.meta.events.register("before-send.s3.*", before_send)
    return seen


def _response(url: str, status: int, body: bytes) -> AWSResponse:
    class Raw:
        def stream(self, **_: object):
            yield body

    response = AWSResponse(url, status, {"Content-Type": "application/xml"}, Raw())
    response._content = body  # botocore reads .content for the error body
    return response


@pytest.fixture
def s3(s3_settings: Settings, s3_bucket: str) -> S3Storage:
    return S3Storage(f"s3://{s3_bucket}/faults", s3_settings)


def test_503s_are_retried_until_success(s3: S3Storage) -> None:
    seen = inject_errors(s3, [503, 503, 503])
    s3.write_bytes("x.txt", b"payload")
    assert len(seen) == 3
    assert s3.read_bytes("x.txt") == b"payload"


def test_409_conflict_is_retried(s3: S3Storage) -> None:
    seen = inject_errors(s3, [409])
    s3.put_if_absent("y.txt", b"once")
    assert seen == ["PUT"]
    assert s3.read_bytes("y.txt") == b"once"


def test_persistent_503_gives_up_with_the_location(s3: S3Storage) -> None:
    inject_errors(s3, [503] * 100)
    with pytest.raises(StorageUnavailable) as info:
        s3.write_bytes("z/zz.txt", b"never")
    message = str(info.value)
    assert f"s3://{s3.bucket}/faults/z/zz.txt" in message
    assert "4 attempts" in message
    assert "503" in message


def test_permanent_error_is_raised_at_once(s3_settings: Settings) -> None:
    storage = S3Storage("s3://no-such-bucket-here/p", s3_settings)
    requests: list[str] = []
    storage.client.meta.events.register(
        "before-send.s3.*", lambda request, **_: requests.append(request.method)
    )
    with pytest.raises(StorageError) as info:
        storage.write_bytes("k.txt", b"1")
    assert "s3://no-such-bucket-here/p/k.txt" in str(info.value)
    assert "NoSuchBucket" in str(info.value)
    assert requests == ["PUT"]  # one request, no retries


def test_lost_reply_on_create_is_not_a_false_conflict(s3: S3Storage) -> None:
    """The first PUT lands but its reply is lost; the retry's 412 must not be reported."""
    state = {"done": False}

    def after_call(http_response, parsed, **_: object):
        if not state["done"]:
            state["done"] = True
            http_response.status_code = 503
            parsed.clear()
            parsed["Error"] = {"Code": "ServiceUnavailable", "Message": "reply lost"}
            parsed["ResponseMetadata"] = {"HTTPStatusCode": 503}

    s3.client.meta.events.register("after-call.s3.PutObject", after_call)
    s3.put_if_absent("ledger/once.json", b"content")
    assert s3.read_bytes("ledger/once.json") == b"content"
    with pytest.raises(AlreadyExists):
        s3.put_if_absent("ledger/once.json", b"other")


def test_failed_listing_of_the_whole_root_names_the_root(s3_settings: Settings) -> None:
    storage = S3Storage("s3://no-such-bucket-here", s3_settings)
    with pytest.raises(StorageError) as info:
        list(storage.list())
    assert "s3://no-such-bucket-here/" in str(info.value)
    assert "NoSuchBucket" in str(info.value)
