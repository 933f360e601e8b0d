"""Hostile landing keys on real S3 (moto over HTTP), which stores keys the local backend refuses
at write: "..", control characters, non-NFC names, over-long names, nested region names,
invisible and full-width characters. Ingestion refuses each one with a receipt where the key
names a known region, archives the odd-but-addressable ones under their own region, never
writes anything for another region, and a second run does not take them up again."""

from __future__ import annotations

import json
import unicodedata

import pytest
from fixtures.council_files import FIXTURES

from registry.config.settings import Settings
from registry.ingest.pipeline import ingest_pending, list_pending
from registry.storage import S3Storage, checked_key, layout

SETTINGS = Settings(_env_file=None)
SH = "landing/SH/"
# key under the root -> what ingestion must make of it
HOSTILE = {
    f"{SH}../ZJ/merchants/x.csv": ("rejected", "KEY_UNSAFE"),
    f"{SH}merchants/../../ZJ/merchants/x.csv": ("rejected", "KEY_UNSAFE"),
    f"{SH}merchants/./x.csv": ("rejected", "KEY_UNSAFE"),
    f"{SH}/merchants/x.csv": ("rejected", "KEY_UNSAFE"),
    f"{SH}merchants/..": ("rejected", "KEY_UNSAFE"),
    f"{SH}merchants/a\x01b.csv": ("rejected", "KEY_UNSAFE"),
    f"{SH}merchants/a\x7fb.csv": ("rejected", "KEY_UNSAFE"),
    f"{SH}merchants/tab\there.csv": ("rejected", "KEY_UNSAFE"),
    f"{SH}merchants/" + unicodedata.normalize("NFD", "café.csv"): ("rejected", "KEY_UNSAFE"),
    f"{SH}merchants/" + "长" * 400 + ".csv": ("rejected", "KEY_UNSAFE"),  # 1,200+ bytes
    f"{SH}merchants/a\\..\\..\\ZJ\\x.csv": ("rejected", "KEY_UNSAFE"),
    # Addressable, so handled as what the key says: SH's own folders.
    f"{SH}mer\u200bchants/x.csv": ("rejected", "UNKNOWN_DATASET"),
    f"{SH}merchants\uff0f..\uff0fZJ/x.csv": ("rejected", "UNKNOWN_DATASET"),
    f"{SH}ZJ/merchants/x.csv": ("rejected", "UNKNOWN_DATASET"),
    f"{SH}merchants/x\u202ecsv.xlsx": ("staged", None),  # RTL override in the name
    f"{SH}merchants/\u200b\ufeff.csv": ("staged", None),
    # No known region: nothing can be told to anyone; left alone and logged.
    "landing/\uff33\uff28/merchants/x.csv": ("skipped", None),  # full-width SH
    "landing/SH\uff0fZJ/merchants/x.csv": ("skipped", None),
    "landing/SH\u200b/merchants/x.csv": ("skipped", None),
    "landing/sh/merchants/x.csv": ("skipped", None),
    "landing/../ZJ/merchants/x.csv": ("skipped", None),
}


@pytest.mark.parametrize(("file", "stem"), [
    ("六月备案.csv", "六月备案"), ("SH 名单 (终稿).v2.xlsx", "SH_名单_终稿_v2"),
    ("a\\..\\..\\ZJ\\x.csv", "a_ZJ_x"), ("x\u202ecsv.xlsx", "x_csv"), (".csv", "csv"),
    ("\u200b\ufeff.csv", "upload"), ("长" * 400 + ".csv", "长" * 80),
    (unicodedata.normalize("NFD", "café.csv"), "café"),
])
def test_a_receipt_key_carries_the_file_name_and_is_always_safe(file: str, stem: str) -> None:
    key = layout.receipt_key("SH", "20260601T010203Z-abc", file, "json")
    assert key == f"landing/SH/_receipts/20260601T010203Z-abc_{stem}.json"
    assert checked_key(key) == key


@pytest.fixture
def s3(s3_settings: Settings, s3_bucket: str) -> S3Storage:
    return S3Storage(f"s3://{s3_bucket}/root", s3_settings)


def _raw_put(storage: S3Storage, key: str, data: bytes) -> bool:
    """Put through boto3 directly, as a council's own tool would; False if the store refuses."""
    try:
        storage.client.put_object(Bucket=storage.bucket, Key=f"{storage.prefix}/{key}",
                                  Body=data)
    except Exception:  # a store may refuse some of these names itself, which is also safe
        return False
    return True


def test_hostile_landing_keys_are_refused_or_kept_in_their_own_region(
    s3: S3Storage, record_property
) -> None:
    data = (FIXTURES / "merchants_sh_gb18030.csv").read_bytes()
    accepted_by_store = {}
    for i, key in enumerate(HOSTILE):
        # Distinct bytes per key, so that none is a duplicate of another.
        if _raw_put(s3, key, data + b"\n" * i):
            accepted_by_store[key] = HOSTILE[key]
    assert len(accepted_by_store) >= 18, "moto stores nearly every one of these names"

    results = {r.key: r for r in ingest_pending(s3, SETTINGS).results}
    assert set(results) == set(accepted_by_store)
    for key, (status, code) in accepted_by_store.items():
        assert (results[key].status, results[key].file_error) == (status, code), repr(key)
        if status != "skipped":
            assert results[key].region == "SH"

    # Never across regions: everything written outside landing/ is SH's, every receipt too.
    # (Each run leaves a scorecard for every region: ZJ's counts nothing.)
    zj_card = json.loads(s3.read_bytes("reports/scorecards/ZJ/latest.json"))
    assert (zj_card["batches"], zj_card["rows_received"]) == (0, 0)
    written = [i.key for i in s3.list() if not i.key.startswith(("landing/", "reports/score"))
               or "/_receipts/" in i.key]
    # (A receipt's name carries the file's own name, whatever it says: the folders decide.)
    folders = [k.rsplit("/", 1)[0] for k in written]
    assert not [k for k in folders if "ZJ" in k or ("region=" in k and "region=SH" not in k)]
    assert all(k.startswith(f"{SH}_receipts/") for k in written if k.startswith("landing/"))
    receipts = [json.loads(s3.read_bytes(k)) for k in written
                if k.startswith(f"{SH}_receipts/") and k.endswith(".json")]
    refused = [r for r in receipts if r["status"] == "rejected"]
    assert len(refused) == sum(1 for s, _ in accepted_by_store.values() if s == "rejected")
    for receipt in refused:
        code = receipt["file_errors"][0]["code"]
        assert code in ("KEY_UNSAFE", "UNKNOWN_DATASET") and receipt["region"] == "SH"
        # What the clerk reads has no raw control or invisible character in it.
        text = json.dumps(receipt, ensure_ascii=False)
        assert not [ch for ch in "\x01\x7f\u200b\u202e\t" if ch in text], text
    staged = [r for r in results.values() if r.status == "staged"]
    for r in staged:
        assert s3.exists(layout.raw_key("SH", "merchants", r.sha256, "csv")) or s3.exists(
            layout.raw_key("SH", "merchants", r.sha256, "xlsx"))

    # Refused keys are marked seen; only the ones no region owns stay pending (and skipped).
    pending = set(list_pending(s3, SETTINGS))
    assert pending == {k for k, (s, _) in accepted_by_store.items() if s == "skipped"}
    assert {r.status for r in ingest_pending(s3, SETTINGS).results} <= {"skipped"}
    record_property("hostile_landing_keys_tried", len(accepted_by_store))
    record_property("hostile_landing_keys_crossing_regions", 0)
