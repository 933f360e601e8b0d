"""Transient S3 failures are retried with backoff, on both clients (boto3 and polars'
object-store client); persistent ones give a clear error."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest
from botocore.awsrequest import AWSResponse
from fault_proxy import KINDS, FaultProxy, from_polars
from polars.testing import assert_frame_equal

from registry.config.settings import Settings
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
    s3.put_if_absent("once/x.json", b"content")
    assert s3.read_bytes("once/x.json") == b"content"
    with pytest.raises(AlreadyExists):
        s3.put_if_absent("once/x.json", b"other")


def test_failed_listing_of_the_whole_root_names_the_root(s3_settings: Settings) -> None:
    storage = S3Storage("s3://no-such-bucket-here", s3_settings)
    with pytest.raises(StorageError) as info:
        list(storage.list())
    assert "s3://no-such-bucket-here/" in str(info.value)
    assert "NoSuchBucket" in str(info.value)


# --------------------------------------------------------------------------------------------
# Parquet goes through polars' own object-store client: faults come from a proxy in front of
# the S3 server, which both clients reach (tests/fault_proxy.py).


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_endpoint, eligible=from_polars, seed=20, hold_s=2.0) as running:
        yield running


@pytest.fixture
def via_proxy(s3_settings: Settings, s3_bucket: str, proxy: FaultProxy) -> S3Storage:
    # A read timeout shorter than the proxy's hold, so held requests time out quickly.
    settings = s3_settings.model_copy(
        update={"aws_endpoint_url": proxy.url, "s3_read_timeout_s": 1.0}
    )
    return S3Storage(f"s3://{s3_bucket}/faults", settings)


def test_parquet_reads_and_writes_survive_every_kind_of_fault(
    via_proxy: S3Storage, proxy: FaultProxy
) -> None:
    proxy.share = 0.4
    frames = {f"t/{i}.parquet": pl.DataFrame({"i": list(range(i, i + 50))}) for i in range(12)}
    for key, frame in frames.items():
        via_proxy.write_parquet(frame, key)
    # One write at a time, so the seeded draws are the same on every run: all kinds occur.
    assert set(proxy.injected) == set(KINDS)
    for key, frame in frames.items():
        assert_frame_equal(via_proxy.read_parquet(key), frame)
    scan = via_proxy.scan_parquet("t/*.parquet").select(pl.col("i").sum())
    assert via_proxy.retried_read("t/", scan.collect).item() == sum(
        frame["i"].sum() for frame in frames.values()
    )
    assert {"GET", "PUT"} <= set(proxy.injected_by_method)
    assert [info.key for info in via_proxy.list("t/")] == sorted(frames)


def test_a_digest_cut_off_part_way_is_read_again_from_the_start(
    via_proxy: S3Storage, proxy: FaultProxy
) -> None:
    """The reply to the first GET stops half-way through the object and the connection is
    reset: the digest reads the object again and hashes it whole, once."""
    data = bytes(range(256)) * 40_000  # 10 MB: more than a chunk
    via_proxy.write_bytes("t/digest.bin", data)
    proxy.eligible = lambda method, path, headers: method == "GET"
    proxy.next_faults = ["reset-response"]
    digest = via_proxy.digest("t/digest.bin", tail_bytes=1000)
    assert proxy.injected == {"reset-response": 1} and proxy.requests["GET"] == 2
    assert digest.size == len(data)
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.tail == data[-1000:]
    proxy.next_faults = ["reset-response"]
    assert via_proxy.read_bytes("t/digest.bin") == data
    assert proxy.injected == {"reset-response": 2} and proxy.requests["GET"] == 4


def test_a_parquet_write_refused_throughout_names_the_key_and_leaves_no_object(
    via_proxy: S3Storage, proxy: FaultProxy
) -> None:
    proxy.permanent = 503
    with pytest.raises(StorageUnavailable) as info:
        via_proxy.write_parquet(pl.DataFrame({"i": [1]}), "t/never.parquet")
    message = str(info.value)
    assert f"s3://{via_proxy.bucket}/faults/t/never.parquet" in message
    assert "503" in message
    # polars' client gave up after its own retries; they are not retried all over again.
    assert proxy.requests["PUT"] <= 2 * via_proxy.max_attempts
    assert not via_proxy.exists("t/never.parquet")


def test_a_multipart_parquet_write_that_fails_leaves_nothing_visible(
    via_proxy: S3Storage, proxy: FaultProxy
) -> None:
    """Large files go up in parts; S3 shows the object only once the upload completes."""
    proxy.eligible = lambda method, path, headers: "partNumber=2" in path
    proxy.permanent = 503
    rng = np.random.default_rng(1)
    # About 45 MB of Parquet: polars sends anything much over 30 MB as a multipart upload.
    frame = pl.DataFrame({"x": rng.random(3_000_000), "y": rng.integers(0, 1 << 62, 3_000_000)})
    with pytest.raises(StorageUnavailable, match="partNumber=2"):
        via_proxy.write_parquet(frame, "t/big.parquet")
    assert proxy.requests["POST"] >= 1  # a multipart upload was started
    assert list(via_proxy.list("t/")) == []


def test_conflicts_on_a_parquet_write_beyond_polars_own_retry_are_retried(
    via_proxy: S3Storage, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """object_store does not retry a 409 on a PUT and polars tries only once more; the seam
    retries what is left."""
    proxy.next_faults = ["409", "409", "409"]
    with caplog.at_level(logging.WARNING, logger="registry.storage"):
        via_proxy.write_parquet(pl.DataFrame({"i": [1, 2]}), "t/conflict.parquet")
    assert proxy.injected == {"409": 3} and proxy.eligible_requests["PUT"] == 4
    assert "conflict.parquet: transient failure" in caplog.text and "409" in caplog.text
    assert via_proxy.read_parquet("t/conflict.parquet")["i"].to_list() == [1, 2]


def test_replies_cut_off_mid_body_beyond_polars_own_retries_are_retried(
    via_proxy: S3Storage, proxy: FaultProxy, caplog: pytest.LogCaptureFixture
) -> None:
    frame = pl.DataFrame({"i": list(range(100))})
    via_proxy.write_parquet(frame, "t/cut.parquet")
    proxy.next_faults = ["reset-response"] * 14
    scan = via_proxy.scan_parquet("t/cut.parquet")
    with caplog.at_level(logging.WARNING, logger="registry.storage"):
        assert_frame_equal(via_proxy.retried_read("t/cut.parquet", scan.collect), frame)
    assert proxy.injected == {"reset-response": 14}
    assert "cut.parquet: transient failure" in caplog.text and "body error" in caplog.text
