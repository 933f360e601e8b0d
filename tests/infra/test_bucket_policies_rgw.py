"""Council isolation on a real S3 server: the generated bucket policy applied on Ceph RGW,
exercised through the storage seam with each council's, the reader's and the pipeline's own
credentials."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from botocore.exceptions import ClientError
from policy_generator import generate
from rgw_fixtures import RgwCluster

from registry.config.regions import load_regions
from registry.config.settings import PROJECT_ROOT
from registry.storage import PermissionDenied, S3Storage, Storage, layout

pytestmark = pytest.mark.rgw

REGIONS = list(load_regions(PROJECT_ROOT / "config").regions)
ROOT = "root"
# Everything outside landing/ that the pipeline owns (opaque bytes: the policy is what is
# tested, not the records; the ledger's key is spelled by registry.storage.layout).
CLAIM = layout.claim_key("merchants", "SH", "20261130T000000Z-0a0a0a0a0a0a")
PIPELINE_AREAS = (
    "raw/SH/merchants/0a.csv", CLAIM, "staged/merchants/region=SH/x.parquet",
    "quarantine/merchants/region=SH/x.parquet", "registry/latest.json",
    "registry/snapshots/s1/_manifest.json", "reports/s1/index.html",
)


class Roles:
    """The policed bucket as each user sees it through the storage seam."""

    def __init__(self, rgw: RgwCluster, bucket: str):
        self.rgw, self.bucket = rgw, bucket
        self._cache: dict[str, S3Storage] = {}

    def __call__(self, user: str) -> S3Storage:
        if user not in self._cache:
            self._cache[user] = S3Storage(f"s3://{self.bucket}/{ROOT}", self.rgw.settings(user))
        return self._cache[user]

    def council(self, region: str) -> S3Storage:
        return self(RgwCluster.council(region))

    def apply(self, policy: dict) -> None:
        self.rgw.client("pipeline").put_bucket_policy(Bucket=self.bucket, Policy=json.dumps(policy))


@pytest.fixture
def roles(rgw: RgwCluster, rgw_bucket: str) -> Roles:
    roles = Roles(rgw, rgw_bucket)
    roles.apply(generate.bucket_policy(REGIONS, rgw_bucket, ROOT))
    pipeline = roles("pipeline")
    for key in PIPELINE_AREAS:
        pipeline.write_bytes(key, b"pipeline's")
    for region in REGIONS:
        pipeline.write_bytes(f"landing/{region}/_receipts/u1.json", f"{region} receipt".encode())
    return roles


def _denied(action: Callable[[], object]) -> bool:
    try:
        action()
    except PermissionDenied:
        return True
    return False


def test_councils_cannot_write_outside_their_own_landing_area(
    roles: Roles, record_property: Callable[[str, object], None]
) -> None:
    attempts = denied = 0
    for region in REGIONS:
        council = roles.council(region)
        targets = [f"landing/{other}/merchants/forged.csv" for other in REGIONS if other != region]
        targets += [f"landing/{region}/_receipts/forged.json", *PIPELINE_AREAS]
        for key in targets:
            for action in (
                lambda c=council, k=key: c.write_bytes(k, b"forged"),
                lambda c=council, k=key: c.put_if_absent(k, b"forged"),
                lambda c=council, k=key: c.delete(k),
            ):
                attempts += 1
                denied += _denied(action)
    record_property("cross_council_write_attempts", attempts)
    record_property("cross_council_writes_denied", denied)
    assert denied == attempts == len(REGIONS) * (len(REGIONS) + len(PIPELINE_AREAS)) * 3

    pipeline = roles("pipeline")
    assert not [i.key for i in pipeline.list() if "forged" in i.key]
    for key in PIPELINE_AREAS:
        assert pipeline.read_bytes(key) == b"pipeline's"
    for region in REGIONS:
        receipt = pipeline.read_bytes(f"landing/{region}/_receipts/u1.json")
        assert receipt == f"{region} receipt".encode()


def test_downstream_reader_cannot_write_at_all(
    roles: Roles, record_property: Callable[[str, object], None]
) -> None:
    reader = roles("reader")
    targets = [f"landing/{r}/merchants/x.csv" for r in REGIONS]
    targets += [f"landing/{r}/_receipts/u1.json" for r in REGIONS] + list(PIPELINE_AREAS)
    attempts = [
        action for key in targets for action in (
            lambda k=key: reader.write_bytes(k, b"x"),
            lambda k=key: reader.put_if_absent(k, b"x"),
            lambda k=key: reader.delete(k),
        )
    ]
    etag = roles("pipeline").head("registry/latest.json").etag
    attempts.append(lambda: reader.replace_if_match("registry/latest.json", b"moved", etag))
    denied = sum(_denied(a) for a in attempts)
    record_property("reader_writes_denied", denied)
    assert denied == len(attempts)
    assert roles("pipeline").read_bytes("registry/latest.json") == b"pipeline's"


def test_reader_reads_only_registry_and_reports(roles: Roles) -> None:
    reader = roles("reader")
    assert reader.read_bytes("registry/latest.json") == b"pipeline's"
    assert reader.read_bytes("reports/s1/index.html") == b"pipeline's"
    assert [i.key for i in reader.list("registry/")] == [
        "registry/latest.json", "registry/snapshots/s1/_manifest.json",
    ]
    for key in ("landing/SH/_receipts/u1.json", "staged/merchants/region=SH/x.parquet",
                "raw/SH/merchants/0a.csv", CLAIM):
        assert _denied(lambda k=key: reader.read_bytes(k)), key
    assert _denied(lambda: list(reader.list("landing/")))
    assert _denied(lambda: list(reader.list()))


@pytest.mark.parametrize("region", REGIONS)
def test_council_uploads_to_its_landing_and_reads_its_receipts(roles: Roles, region: str) -> None:
    council = roles.council(region)
    key = f"landing/{region}/merchants/2026-11/经营者备案.csv"
    council.put_if_absent(key, "备案编号\n1".encode())
    # The bucket owner can read what the council sent: the seam grants it on every PUT.
    assert roles("pipeline").read_bytes(key) == "备案编号\n1".encode()
    assert council.read_bytes(f"landing/{region}/_receipts/u1.json") == (
        f"{region} receipt".encode()
    )
    assert {i.key for i in council.list(f"landing/{region}/")} == {
        key, f"landing/{region}/_receipts/u1.json",
    }
    for other in (r for r in REGIONS if r != region):
        assert _denied(lambda o=other: council.read_bytes(f"landing/{o}/_receipts/u1.json"))
        assert _denied(lambda o=other: list(council.list(f"landing/{o}/")))
    assert _denied(lambda: council.read_bytes("registry/latest.json"))


def test_policy_refuses_a_council_upload_that_would_hide_it_from_the_owner(
    rgw: RgwCluster, roles: Roles
) -> None:
    """Without bucket-owner-full-control, RGW hides a council's object from the bucket owner
    (unless a policy statement grants the owner explicitly, as the pipeline's does). The
    generated policy refuses such uploads; a policy that let them in would leave them
    unreadable to the pipeline, while the seam's uploads stay readable under either."""
    region = REGIONS[0]
    key = f"{ROOT}/landing/{region}/merchants/no-acl.csv"
    raw = rgw.client(RgwCluster.council(region))
    with pytest.raises(ClientError) as info:
        raw.put_object(Bucket=roles.bucket, Key=key, Body=b"x")
    assert info.value.response["Error"]["Code"] == "AccessDenied"

    lax = generate.council_statements(region, roles.bucket, ROOT)
    del lax[0]["Condition"]
    roles.apply({"Version": "2012-10-17", "Statement": lax})
    raw.put_object(Bucket=roles.bucket, Key=key, Body=b"x")
    pipeline: Storage = roles("pipeline")
    assert _denied(lambda: pipeline.read_bytes(f"landing/{region}/merchants/no-acl.csv"))
    # The same upload through the seam, which grants the owner on every PUT, stays readable.
    roles.council(region).write_bytes(f"landing/{region}/merchants/acl.csv", b"y")
    assert pipeline.read_bytes(f"landing/{region}/merchants/acl.csv") == b"y"
