"""The capability probe: publishing refuses a store that does not enforce its guarantees."""

from __future__ import annotations

import pickle

import pytest
from rgw_fixtures import RgwCluster

from registry.storage import (
    COMPARE_AND_SWAP,
    CREATE_IF_ABSENT,
    LocalStorage,
    S3Storage,
    Storage,
    StorageUnavailable,
    StoreLacksGuarantees,
    probe_capabilities,
)


def test_store_with_both_guarantees_passes_and_leaves_nothing(storage: Storage) -> None:
    storage.write_bytes("registry/latest.json", b"{}")
    caps = probe_capabilities(storage)
    assert caps.create_if_absent
    assert caps.compare_and_swap
    assert caps.missing == ()
    assert caps.require() is caps
    assert caps.root_uri == storage.root_uri
    assert [i.key for i in storage.list()] == ["registry/latest.json"]


@pytest.mark.rgw
def test_versioned_rgw_bucket_is_caught(rgw: RgwCluster, rgw_versioned_bucket: str) -> None:
    """Ceph RGW 16.2 on a versioned bucket lets every ``If-None-Match: *`` write win, and
    refuses every ``If-Match``, even with the current etag: neither guarantee holds there."""
    storage = S3Storage(f"s3://{rgw_versioned_bucket}/root", rgw.settings())
    caps = probe_capabilities(storage)
    assert not caps.create_if_absent
    assert not caps.compare_and_swap
    with pytest.raises(StoreLacksGuarantees) as info:
        caps.require()
    assert info.value.missing == (CREATE_IF_ABSENT, COMPARE_AND_SWAP)
    message = str(info.value)
    assert f"s3://{rgw_versioned_bucket}/root" in message
    assert "create-if-absent" in message and "versioned" in message
    assert list(storage.list()) == []


class _IgnoresConditions(LocalStorage):
    """A store that accepts conditional writes and silently performs them unconditionally."""

    def put_if_absent(self, key: str, data: bytes) -> str:
        return self.write_bytes(key, data)

    def replace_if_match(self, key: str, data: bytes, etag: str) -> str:
        return self.write_bytes(key, data)


class _IgnoresIfMatchOnly(LocalStorage):
    def replace_if_match(self, key: str, data: bytes, etag: str) -> str:
        return self.write_bytes(key, data)


def test_store_ignoring_every_condition_lacks_both(tmp_path) -> None:
    storage = _IgnoresConditions(tmp_path / "root")
    caps = probe_capabilities(storage)
    assert caps.missing == (CREATE_IF_ABSENT, COMPARE_AND_SWAP)
    with pytest.raises(StoreLacksGuarantees, match="create-if-absent and compare-and-swap"):
        caps.require()
    assert list(storage.list()) == []


def test_store_ignoring_if_match_lacks_compare_and_swap(tmp_path) -> None:
    caps = probe_capabilities(_IgnoresIfMatchOnly(tmp_path / "root"))
    assert caps.create_if_absent
    assert caps.missing == (COMPARE_AND_SWAP,)


class _FailsMidProbe(LocalStorage):
    def head(self, key: str):
        if key.startswith("_probe/"):
            raise StorageUnavailable(f"head {key}: injected outage")
        return super().head(key)


def test_probe_that_cannot_finish_raises_and_still_cleans_up(tmp_path) -> None:
    storage = _FailsMidProbe(tmp_path / "root")
    with pytest.raises(StorageUnavailable):
        probe_capabilities(storage)
    assert list(storage.list()) == []


def test_lacking_guarantees_error_survives_pickling() -> None:
    """Prefect ships task exceptions between processes."""
    err = StoreLacksGuarantees("s3://b/p", (CREATE_IF_ABSENT,))
    back = pickle.loads(pickle.dumps(err))
    assert back.missing == (CREATE_IF_ABSENT,)
    assert str(back) == str(err)
