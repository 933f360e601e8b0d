"""Injected S3 faults during a whole ingest and publish on S3 (moto over HTTP).

The storage seam has two clients, and both are faulted at every call site:

- boto3: a botocore ``before-send`` hook on the pipeline's client makes a seeded share of
  every call fail (5xx, 409, read and connect timeouts, connection resets) before it reaches
  the server;
- polars' object-store client, which reads and writes the Parquet files: both clients reach
  the server through a fault proxy on loopback (tests/fault_proxy.py), which fails a seeded
  share of polars' requests (5xx, 409 on writes, held requests that time out, connections
  reset mid-request, and mid-reply after the server acted).

Both stages finish, every input row is staged or quarantined exactly once, and the snapshot
verifies. A permanent fault (403 at the commit point, every call failing, or every Parquet
request refused) gives a clear error and no half state: latest unchanged and verifying, and a
rerun once the fault clears completes.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError
from fault_proxy import KINDS, FaultProxy, from_polars
from fixtures.council_files import FIXTURES

from registry import ledger
from registry.config.settings import Settings
from registry.ingest.pipeline import ingest_pending
from registry.publish import collect_garbage, publish_snapshot
from registry.snapshot.reader import read_latest, read_log, verify_snapshot
from registry.storage import PermissionDenied, S3Storage, StorageUnavailable, layout

UPLOADS = {
    "landing/SH/merchants/2024Q2/备案汇总.csv": ("merchants_sh_gb18030.csv", 10),
    "landing/JS/merchants/js.csv": ("merchants_js_bom.csv", 5),
    "landing/ZJ/complaints/投诉.xlsx": ("complaints_zj.xlsx", 7),
    "landing/AH/inspections/t.jsonl": ("inspections_ah.jsonl", 5),
    "landing/ZJ/gift_evaluations/scores.parquet": ("gift_evaluations_zj.parquet", 6),
}
_ERROR_XML = b"<?xml version='1.0'?><Error><Code>%s</Code><Message>injected</Message></Error>"


def _response(url: str, status: int, code: bytes) -> AWSResponse:
    body = _ERROR_XML % code

    class Raw:
        def stream(self, **_: object):
            yield body

    response = AWSResponse(url, status, {"Content-Type": "application/xml"}, Raw())
    response._content = body
    return response


class Faults:
    """Fails a seeded share of the S3 calls of one client, or every call matching ``only``."""

    KINDS = ("500", "503", "409", "read-timeout", "connect-timeout", "reset")

    def __init__(self, storage: S3Storage, *, share: float, seed: int = 9,
                 permanent: tuple[int, bytes] | None = None,
                 only: Callable[[str, str], bool] | None = None):
        self.rng = random.Random(seed)
        self.share, self.permanent, self.only = share, permanent, only
        self.calls = 0
        self.injected: Counter[str] = Counter()
        self.enabled = True
        storage.client.meta.events.register("before-send.s3.*", self)

    def __call__(self, request, **_: object):
        self.calls += 1
        if not self.enabled or (self.only and not self.only(request.method, request.url)):
            return None
        if self.permanent:
            self.injected[str(self.permanent[0])] += 1
            return _response(request.url, *self.permanent)
        if self.rng.random() >= self.share:
            return None
        kind = self.rng.choice(self.KINDS)
        self.injected[kind] += 1
        if kind == "read-timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        if kind == "connect-timeout":
            raise ConnectTimeoutError(endpoint_url=request.url)
        if kind == "reset":
            raise ConnectionClosedError(endpoint_url=request.url)
        status = int(kind)
        code = {500: b"InternalError", 503: b"SlowDown", 409: b"ConditionalRequestConflict"}
        return _response(request.url, status, code[status])


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultProxy]:
    """Passes everything through until a test sets a share or a permanent fault; only
    polars' requests may fail (boto3's have the hook). Ingest writes its Parquet files one at
    a time, so their faults follow from the seed alone: with this one, one of each kind."""
    with FaultProxy(moto_endpoint, eligible=from_polars, seed=169, hold_s=3.0) as running:
        yield running


@pytest.fixture
def s3(s3_settings: Settings, s3_bucket: str, proxy: FaultProxy) -> S3Storage:
    # Both clients go through the proxy. A request the proxy holds times out after 2 s.
    settings = s3_settings.model_copy(
        update={"s3_max_attempts": 10, "aws_endpoint_url": proxy.url, "s3_read_timeout_s": 2.0}
    )
    return S3Storage(f"s3://{s3_bucket}/root", settings)


def _upload_all(storage: S3Storage) -> None:
    for key, (fixture, _) in UPLOADS.items():
        storage.write_bytes(key, (FIXTURES / fixture).read_bytes())


@pytest.mark.slow
def test_ingest_and_publish_survive_one_call_in_five_failing(
    s3: S3Storage, proxy: FaultProxy, record_property
) -> None:
    _upload_all(s3)
    faults = Faults(s3, share=0.2)
    proxy.share = 0.2
    settings = Settings(_env_file=None)
    results = ingest_pending(s3, settings).results
    published = publish_snapshot(s3, settings)
    faults.enabled = proxy.enabled = False

    assert sorted(r.status for r in results) == ["staged"] * len(UPLOADS)
    rows_in = {r.key: r.rows_in for r in results}
    assert rows_in == {k: rows for k, (_, rows) in UPLOADS.items()}
    staged = quarantined = 0
    for r in results:
        assert r.rows_in == r.accepted + r.quarantined
        s = s3.read_parquet(layout.staged_prefix(r.dataset, r.region, r.batch_id)
                            + "part-0.parquet")
        q = s3.read_parquet(layout.quarantine_prefix(r.dataset, r.region, r.batch_id)
                            + "part-0.parquet")
        rows = [*s["_source_row"], *q["_source_row"]]
        assert len(rows) == len(set(rows)) == r.rows_in  # each row once, none lost
        staged, quarantined = staged + s.height, quarantined + q.height
    assert staged + quarantined == sum(rows for _, rows in UPLOADS.values())
    assert len(ledger.committed_refs(s3)) == len(UPLOADS)
    assert published.seq == 1 and [e.seq for e in read_log(s3)] == [1]
    assert published.report is not None  # the report read the snapshot through the faults
    assert verify_snapshot(s3) == []
    assert ingest_pending(s3, settings).results == []  # nothing pending, nothing twice

    injected = sum(faults.injected.values())
    assert injected >= 0.1 * faults.calls and set(faults.injected) == set(Faults.KINDS)
    polars_requests = sum(proxy.eligible_requests.values())
    assert proxy.total_injected >= 0.1 * polars_requests
    assert {"GET", "PUT"} <= set(proxy.injected_by_method)  # staged writes, snapshot reads
    assert set(proxy.injected) == set(KINDS)
    record_property("fault_calls", faults.calls + polars_requests)
    record_property("faults_injected", injected + proxy.total_injected)
    record_property("faults_survived", injected + proxy.total_injected)
    record_property("polars_fault_requests", polars_requests)
    record_property("polars_faults_injected", proxy.total_injected)
    record_property("polars_faults_by_kind", dict(proxy.injected))
    record_property("polars_faults_by_method", dict(proxy.injected_by_method))
    record_property("fault_rows_lost", sum(rows for _, rows in UPLOADS.values())
                    - staged - quarantined)


def test_a_permanent_403_at_the_commit_point_leaves_latest_as_it_was(s3: S3Storage) -> None:
    _upload_all(s3)
    settings = Settings(_env_file=None)
    ingest_pending(s3, settings)
    first = publish_snapshot(s3, settings)
    s3.write_bytes("landing/AH/inspections/more.jsonl",
                   (FIXTURES / "inspections_ah.jsonl").read_bytes() + b"\n")
    ingest_pending(s3, settings)

    faults = Faults(s3, share=0, permanent=(403, b"AccessDenied"),
                    only=lambda method, url: method == "PUT" and "/registry/_log/" in url)
    with pytest.raises(PermissionDenied) as info:
        publish_snapshot(s3, settings)
    assert "registry/_log/00000000000000000002.json" in str(info.value)
    assert "AccessDenied" in str(info.value)
    assert read_latest(s3)[0].snapshot_id == first.snapshot_id
    assert verify_snapshot(s3) == [] and len(read_log(s3)) == 1

    faults.enabled = False
    assert collect_garbage(s3, settings, grace_seconds=0).orphans_removed  # the half snapshot
    again = publish_snapshot(s3, settings)
    assert again.seq == 2 and verify_snapshot(s3) == []


def test_a_store_that_always_fails_gives_a_clear_error_and_no_half_state(
    s3: S3Storage,
) -> None:
    _upload_all(s3)
    settings = Settings(_env_file=None)
    faults = Faults(s3, share=0, permanent=(503, b"ServiceUnavailable"),
                    only=lambda method, url: method != "PUT" or "/landing/" not in url)
    s3.max_attempts = 3
    with pytest.raises(StorageUnavailable, match="failed after 3 attempts: HTTP 503"):
        ingest_pending(s3, settings)
    with pytest.raises(StorageUnavailable, match="failed after 3 attempts"):
        publish_snapshot(s3, settings)
    faults.enabled = False
    # Nothing claimed, committed or marked seen.
    assert read_latest(s3) is None and ledger.claims(s3) == []
    assert ledger.committed_refs(s3) == set() and ledger.seen_keys(s3) == set()
    results = ingest_pending(s3, settings).results
    assert sorted(r.status for r in results) == ["staged"] * len(UPLOADS)
    assert publish_snapshot(s3, settings).seq == 1 and verify_snapshot(s3) == []


def test_parquet_refused_throughout_gives_a_clear_error_and_no_half_state(
    s3: S3Storage, proxy: FaultProxy
) -> None:
    _upload_all(s3)
    settings = Settings(_env_file=None)
    s3.max_attempts = 3
    proxy.permanent = 503

    with pytest.raises(StorageUnavailable) as info:
        ingest_pending(s3, settings)
    message = str(info.value)
    assert f"write s3://{s3.bucket}/root/staged/" in message and "part-0.parquet" in message
    assert "503" in message
    # The batch is not committed and no Parquet object is visible, half written or whole.
    assert ledger.committed_refs(s3) == set()
    assert list(s3.list("staged/")) == [] and list(s3.list("quarantine/")) == []

    # Its claim lapses; a later run takes the upload over and finishes everything once.
    proxy.permanent = None
    later = settings.model_copy(update={"ingest_claim_lease_s": 0.001})
    results = ingest_pending(s3, later).results
    assert sorted(r.status for r in results) == ["staged"] * len(UPLOADS)
    assert len(ledger.committed_refs(s3)) == len(UPLOADS)

    proxy.permanent = 503
    with pytest.raises(StorageUnavailable) as info:
        publish_snapshot(s3, settings)
    assert f"read s3://{s3.bucket}/root/staged/" in str(info.value)
    assert read_latest(s3) is None and read_log(s3) == []
    assert list(s3.list(layout.SNAPSHOTS_PREFIX)) == []

    proxy.permanent = None
    assert publish_snapshot(s3, settings).seq == 1 and verify_snapshot(s3) == []
