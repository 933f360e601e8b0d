"""A published world for the report tests (imported by conftest.py): the council fixture
files uploaded, ingested and published, then a second snapshot after Shanghai's replace-mode
list shrank to one merchant, now suspended, a held Anhui batch, and a Jiangsu file named after
the clerk who sent it whose only row was refused, so the batch gate held it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

from fixtures.council_files import COUNCIL_UPLOADS, FIXTURES
from staged_rows import merchant, stage_batch

from registry.config.settings import Settings
from registry.ingest.pipeline import ingest_pending, upload_file
from registry.publish import PublishResult, publish_snapshot
from registry.storage import LocalStorage, Storage

UPLOADS = COUNCIL_UPLOADS
# A Shanghai merchant of merchants_sh_gb18030.csv: grade A and trusted in the first snapshot.
SH_KEPT = "91310104076543212J"
HELD_BATCH = "29991231T000000Z-ah-held"
# A file named after a person: the report shows it as HELD_FILE_SHOWN.
HELD_FILE = "张三提交_merchants_江苏.csv"
HELD_FILE_SHOWN = "***_merchants_江苏.csv"


@dataclass(frozen=True)
class World:
    storage: Storage
    settings: Settings
    first: PublishResult
    second: PublishResult


def build_world(root) -> World:
    settings = Settings(_env_file=None, storage_uri=root.as_uri())
    storage = LocalStorage(root)
    for name, region, dataset in UPLOADS:
        upload_file(storage, settings, FIXTURES / name, region=region, dataset=dataset)
    ingest_pending(storage, settings)
    first = publish_snapshot(storage, settings, as_of=date(2025, 3, 1))

    header, row = (FIXTURES / "merchants_js_bom.csv").read_text(encoding="utf-8-sig"
                                                               ).splitlines()[:2]
    held_file = root.parent / HELD_FILE
    held_file.write_text(f"{header}\n{row.replace('91320106134000014K', '91320106134000014X')}\n",
                         encoding="utf-8")
    upload_file(storage, settings, held_file, region="JS", dataset="merchants")
    ingest_pending(storage, settings)

    stage_batch(
        storage, "merchants", "SH", "29991231T000000Z-sh-replace",
        [merchant(filing_id="SH-NEW-1", uscc=SH_KEPT, merchant_name="上海徐家汇商城(集团)有限公司",
                  merchant_name_key="上海徐家汇商城(集团)有限公司", status="suspended",
                  valid_from=date(2024, 1, 1))],
        mode="replace", created_at=datetime.now(UTC),  # committed just now, landed last
    )
    stage_batch(storage, "merchants", "AH", HELD_BATCH,
                [merchant(filing_id="AH-1", uscc="91340100MA2N000001", city="合肥")],
                status="held", created_at=datetime.now(UTC))
    second = publish_snapshot(storage, settings, as_of=date(2025, 3, 2))
    return World(storage, settings, first, second)
