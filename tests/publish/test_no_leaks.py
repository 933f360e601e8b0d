"""No personal data and no secret in anything an end-to-end run leaves behind.

Council files with names, phone numbers and ID-like numbers are ingested and published on S3
(moto over HTTP). Every object written outside the councils' own uploads and their raw archive
(raw/) -- staged and quarantined rows and the ledger included (PIPL minimisation) -- every line
logged (the registry's at DEBUG), an error message and the run summary are scanned for each
personal value of the inputs and for the S3 access key and secret key: none may appear.
Receipts go back to the council that sent the file; they show PII masked, never in clear.
"""

from __future__ import annotations

import io
import logging

import polars as pl
import pytest
from fixtures.council_files import FIXTURES, personal_values

from flows.summary import held_batches, run_summary_markdown
from registry.config.settings import Settings
from registry.ingest.pipeline import ingest_pending
from registry.publish import publish_snapshot
from registry.storage import S3Storage, StorageError

UPLOADS = {
    "landing/SH/merchants/2024Q2/备案汇总.csv": "merchants_sh_gb18030.csv",
    "landing/JS/merchants/js.csv": "merchants_js_bom.csv",
    "landing/ZJ/complaints/投诉.xlsx": "complaints_zj.xlsx",
    "landing/AH/inspections/t.jsonl": "inspections_ah.jsonl",
    "landing/ZJ/gift_evaluations/scores.parquet": "gift_evaluations_zj.parquet",
}
# The archive of the uploads' exact bytes (never shown to other councils or readers; kept as
# long as the bucket's lifecycle rule says, infra/lifecycle.json).
PRIVATE = ("raw/",)


def _text_of(key: str, data: bytes) -> str:
    """What a reader of the object sees: Parquet as its values, anything else as text."""
    if key.endswith(".parquet"):
        frame = pl.read_parquet(io.BytesIO(data))
        return "\n".join(str(v) for column in frame.columns
                         for v in frame.get_column(column).to_list())
    return data.decode("utf-8", errors="replace")


@pytest.mark.slow
def test_an_end_to_end_run_leaks_no_personal_data_and_no_key(
    s3_settings: Settings, s3_bucket: str, caplog: pytest.LogCaptureFixture, record_property
) -> None:
    storage = S3Storage(f"s3://{s3_bucket}/root", s3_settings)
    for key, fixture in UPLOADS.items():
        storage.write_bytes(key, (FIXTURES / fixture).read_bytes())
    settings = Settings(_env_file=None)
    # The registry's own logs at DEBUG, the libraries' at INFO. (botocore's DEBUG log of
    # each request carries the Authorization header, hence the access key id: never run
    # production with botocore at DEBUG.)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="registry")
    ingested = ingest_pending(storage, settings)
    published = publish_snapshot(storage, settings)
    summary = run_summary_markdown(ingested=ingested, published=published,
                                   held=held_batches(storage))
    # An error message, too: a write the store refuses (no such bucket).
    with pytest.raises(StorageError) as refused:
        S3Storage(f"s3://{s3_bucket}-missing/root", s3_settings).write_bytes("x.json", b"{}")
    secrets = [s3_settings.aws_access_key_id,
               s3_settings.aws_secret_access_key.get_secret_value()]

    # The personal values of the inputs, from the uploads themselves (staged and quarantined
    # rows no longer carry them).
    personal = {v for key, fixture in UPLOADS.items()
                for v in personal_values((FIXTURES / fixture).read_bytes(), key.split("/")[2])}
    assert len(personal) >= 5, personal  # the fixtures do carry names and phones

    outputs = {info.key: _text_of(info.key, storage.read_bytes(info.key))
               for info in storage.list()
               if not info.key.startswith(PRIVATE) and info.key not in UPLOADS}
    assert any(k.startswith("registry/snapshots/") for k in outputs)
    assert any(k.startswith("reports/") for k in outputs)
    receipts = {k: v for k, v in outputs.items() if "/_receipts/" in k}
    assert len(receipts) == 2 * len(UPLOADS)
    outputs["<logs>"] = caplog.text
    outputs["<run summary>"] = summary
    outputs["<error>"] = str(refused.value)
    leaks = [(where, value) for where, text in outputs.items()
             for value in [*secrets, *personal] if value in text]
    assert leaks == [], sorted({(w.split("/")[0], v) for w, v in leaks})
    # Receipts name the PII rows that were refused, masked.
    assert any("****" in text or "内容不予显示" in text for text in receipts.values())
    record_property("leak_scan_outputs", len(outputs))
    record_property("leak_scan_values", len(personal) + 2)
    record_property("pii_or_secret_leaks", len(leaks))
