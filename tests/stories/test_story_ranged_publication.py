"""A registry too large to build at once is published one USCC range at a time, and a consumer
app cannot tell.

Shanghai, Jiangsu and Zhejiang file their merchants; the publisher is set to build one filing's
USCC range at a time (``REGISTRY_PUBLISH_RANGE_FILINGS=1``: on a real registry a million).
Jiangsu's clerk then revokes one merchant and Shanghai drops another from its complete list.
The consumer reads the second snapshot: the revoked merchant is gone from the merchants table,
the changes table says which merchants were removed, each file verifies against the manifest,
the registry gate passed, and the files are byte for byte those of a publication built whole.
"""

from __future__ import annotations

import hashlib

from staged_rows import AS_OF, merchant, stage_batch, uscc

from registry.config.published import load_published_contracts
from registry.config.settings import PROJECT_ROOT, Settings
from registry.publish import publish_snapshot
from registry.publish.tables import TABLE_ORDER, parquet_bytes, snapshot_tables
from registry.snapshot.reader import open_snapshot, verify_snapshot
from registry.storage import LocalStorage
from registry.storage.layout import report_prefix

SH_1, SH_2, JS_1, JS_2, ZJ_1 = (uscc("31", 1), uscc("31", 2), uscc("32", 1), uscc("32", 2),
                                uscc("33", 1))


def _settings(root, range_filings: int) -> Settings:
    return Settings(_env_file=None, storage_uri=root.as_uri(), schemas_dir=PROJECT_ROOT / "schemas",
                    publish_range_filings=range_filings)


def _file_sha256(storage, snapshot_id: str) -> dict[str, str]:
    manifest = open_snapshot(storage, snapshot_id).manifest
    return {entry.path: entry.sha256 for entry in manifest.files}


def test_a_registry_published_range_by_range_reads_as_one(tmp_path):
    root = tmp_path / "store"
    storage = LocalStorage(root)
    settings = _settings(root, range_filings=1)
    stage_batch(storage, "merchants", "SH", "20261101T000000Z-sh1",
                [merchant(filing_id="SH-1"),
                 merchant(filing_id="SH-2", uscc=SH_2, merchant_name="外滩红酒行",
                          merchant_name_key="外滩红酒行")], mode="replace")
    stage_batch(storage, "merchants", "JS", "20261102T000000Z-js1",
                [merchant(filing_id="JS-1", uscc=JS_1, merchant_name="金陵商行",
                          merchant_name_key="金陵商行", city="南京"),
                 merchant(filing_id="JS-2", uscc=JS_2, merchant_name="秦淮食品",
                          merchant_name_key="秦淮食品", city="南京")])
    stage_batch(storage, "merchants", "ZJ", "20261103T000000Z-zj1",
                [merchant(filing_id="ZJ-1", uscc=ZJ_1, merchant_name="西湖伴手礼",
                          merchant_name_key="西湖伴手礼", city="杭州")])
    first = publish_snapshot(storage, settings, as_of=AS_OF)
    assert first.rows["merchants"] == 5

    stage_batch(storage, "merchants", "JS", "20261130T020000Z-js2",
                [merchant(filing_id="JS-1", uscc=JS_1, status="revoked", city="南京")])
    stage_batch(storage, "merchants", "SH", "20261130T030000Z-sh2",
                [merchant(filing_id="SH-1")], mode="replace")
    second = publish_snapshot(storage, settings, as_of=AS_OF)

    snapshot = open_snapshot(storage, second.snapshot_id)
    assert verify_snapshot(storage, second.snapshot_id) == []
    assert snapshot.merchant(JS_1) is None and snapshot.merchant(SH_2) is None
    assert snapshot.merchant(JS_2)["trusted"] is True
    listed = snapshot.merchants.collect().get_column("uscc").to_list()
    assert listed == sorted(listed) == [SH_1, JS_2, ZJ_1]
    changes = dict(snapshot.changes.collect().select("uscc", "change").iter_rows())
    assert changes == {JS_1: "removed", SH_2: "removed"}
    assert second.changes == {"removed": 2}

    # The gate read the merchants back in parts of whole row groups (here one) and passed them.
    assert any(info.key.endswith("/data_docs/merchants/index.html")
               for info in storage.list(report_prefix(second.snapshot_id)))

    # Built whole, the same snapshot has the same bytes.
    whole = snapshot_tables(storage, _settings(root, range_filings=1_000_000), AS_OF,
                            first.snapshot_id)
    published = _file_sha256(storage, second.snapshot_id)
    contracts = load_published_contracts()
    for name in TABLE_ORDER:
        data = parquet_bytes(whole.tables[name], contracts[name])
        assert hashlib.sha256(data).hexdigest() == published[f"{name}.parquet"], name
