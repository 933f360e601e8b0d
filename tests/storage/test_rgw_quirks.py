"""Ceph RGW quirks that a plain S3 client trips over, each shown raw and then handled.

The bucket-owner ACL quirk needs per-council users and the bucket policy: it is proven in
tests/infra/test_bucket_policies_rgw.py.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from botocore.exceptions import ClientError
from rgw_fixtures import RgwCluster

from registry.storage import S3Storage

pytestmark = pytest.mark.rgw


def test_quoted_if_match_is_refused_raw_and_accepted_through_the_seam(
    rgw: RgwCluster, rgw_storage: S3Storage
) -> None:
    etag = rgw_storage.put_if_absent("registry/latest.json", b"v1")
    quoted = f'"{etag}"'  # the form S3 itself returns in ETag headers
    raw = rgw.client()
    with pytest.raises(ClientError) as info:
        raw.put_object(
            Bucket=rgw_storage.bucket, Key="root/registry/latest.json", Body=b"raw", IfMatch=quoted
        )
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert rgw_storage.read_bytes("registry/latest.json") == b"v1"

    new = rgw_storage.replace_if_match("registry/latest.json", b"v2", quoted)
    assert rgw_storage.read_bytes("registry/latest.json") == b"v2"
    assert new == rgw_storage.head("registry/latest.json").etag


def test_multipart_completion_has_no_etag_but_head_does(rgw: RgwCluster, rgw_bucket: str) -> None:
    raw = rgw.client()
    upload = raw.create_multipart_upload(Bucket=rgw_bucket, Key="mp.bin")
    part = raw.upload_part(
        Bucket=rgw_bucket, Key="mp.bin", UploadId=upload["UploadId"], PartNumber=1,
        Body=b"p" * (5 * 1024 * 1024),
    )
    done = raw.complete_multipart_upload(
        Bucket=rgw_bucket, Key="mp.bin", UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    assert not done.get("ETag", "").strip('"')  # the quirk
    assert raw.head_object(Bucket=rgw_bucket, Key="mp.bin")["ETag"].strip('"').endswith("-1")


def test_large_parquet_written_in_parts_takes_its_etag_from_head(rgw_storage: S3Storage) -> None:
    """polars writes big files to S3 as multipart uploads; the seam's etag comes from HEAD,
    and compare-and-swap works on such an object."""
    frame = pl.DataFrame({"x": np.random.default_rng(7).random(10_000_000)})  # ~75 MB
    key = "registry/snapshots/s1/merchants.parquet"
    rgw_storage.write_parquet(frame, key)
    info = rgw_storage.head(key)
    assert info.size > 64 * 1024 * 1024
    assert info.etag and "-" in info.etag  # a multipart etag: md5-of-md5s "-" part count
    listed = next(iter(rgw_storage.list("registry/snapshots/s1/")))
    assert listed.etag == info.etag
    assert rgw_storage.read_parquet(key).equals(frame)
    new = rgw_storage.replace_if_match(key, b"small", info.etag)
    assert new == rgw_storage.head(key).etag


def test_write_answered_without_etag_falls_back_to_head(rgw_storage: S3Storage) -> None:
    def drop_etag(parsed, **_: object) -> None:
        parsed.pop("ETag", None)

    rgw_storage.client.meta.events.register("after-call.s3.PutObject", drop_etag)
    etag = rgw_storage.write_bytes("reports/s1/index.html", b"<html></html>")
    assert etag == rgw_storage.head("reports/s1/index.html").etag
    created = rgw_storage.put_if_absent("registry/_log/00000000000000000001.json", b"{}")
    assert created == rgw_storage.head("registry/_log/00000000000000000001.json").etag


def test_large_single_put_round_trips_with_a_plain_etag(rgw_storage: S3Storage) -> None:
    """An upload near a council's realistic maximum goes in one PUT (no multipart quirk)."""
    data = np.random.default_rng(3).bytes(48 * 1024 * 1024)
    etag = rgw_storage.put_if_absent("landing/SH/merchants/big.csv", data)
    assert "-" not in etag
    assert etag == rgw_storage.head("landing/SH/merchants/big.csv").etag
    assert rgw_storage.read_bytes("landing/SH/merchants/big.csv") == data
