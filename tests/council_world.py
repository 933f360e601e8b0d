"""A small registry world for the stories in tests/stories/: councils land real CSV files, the
real ingest and publication run over them, and a test reads what a consumer app would read in
the published snapshot.

Each upload lands one minute after the previous one (its landing object's last-modified time
is set on local disk), so "which upload is the latest" is always the order the story tells,
whatever the file names.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from registry.config.settings import Settings
from registry.ingest.pipeline import UploadResult, ingest_object, ingest_pending, list_pending
from registry.ingest.uscc import USCC_ALPHABET, mod31_check_characters, org_check_characters
from registry.publish import PublishResult, publish_snapshot
from registry.snapshot.reader import open_snapshot
from registry.storage import LocalStorage, Storage, layout

# The day the stories' snapshots are scored on; filings run from 2024 to 2027.
AS_OF = date(2026, 11, 30)
CITY = {"SH": "上海", "JS": "南京", "ZJ": "杭州", "AH": "合肥"}
DISTRICT = {"SH": "静安区", "JS": "玄武区", "ZJ": "西湖区", "AH": "蜀山区"}
DIVISION = {"SH": "31", "JS": "32", "ZJ": "33", "AH": "34"}


def valid_uscc(division: str, n: int) -> str:
    """A code passing both check characters, registered in province ``division`` (31..34)."""
    alphabet = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
    digits = [int(d) for d in f"{n:08d}"]
    body = alphabet[np.array(digits)][None, :]
    org = org_check_characters(body)
    first17 = np.concatenate([
        np.frombuffer(f"91{division}0000".encode(), dtype=np.uint8)[None, :], body, org[:, None]
    ], axis=1)
    check = mod31_check_characters(first17)
    return (first17.tobytes() + check.tobytes()).decode()


def merchant_code(region: str, n: int) -> str:
    """The USCC of merchant ``n`` registered in ``region``."""
    return valid_uscc(DIVISION[region], n)


# --- rows as a council's export has them (English template headers) ---------------------------


def filing(region: str, filing_id: str, uscc: str, **overrides: str) -> dict[str, str]:
    """One merchants row: an active imported-goods filing making every commitment."""
    row = {
        "Filing ID": filing_id, "USCC": uscc, "Merchant Name": f"{filing_id} 进口商品有限公司",
        "Program": "imported_goods", "City": CITY[region], "District": DISTRICT[region],
        "Address": f"{filing_id} 号", "Categories": "food",
        "Origin Countries": "FR", "Chinese Label": "Y", "Traceable": "Y",
        "No Reason Return 7d": "Y", "Offline No Reason Return": "Y",
        "Advance Compensation": "Y", "Valid From": "2024-01-01", "Valid Until": "2027-12-31",
        "Status": "active",
    }
    return {**row, **overrides}


def complaint(complaint_id: str, uscc: str, **overrides: str) -> dict[str, str]:
    """One complaints row: received in June 2026, still being handled."""
    row = {"Complaint ID": complaint_id, "USCC": uscc, "Received On": "2026-06-01",
           "Category": "quality", "Status": "in_progress", "Resolved On": "",
           "Recovered Amount CNY": ""}
    return {**row, **overrides}


def inspection(inspection_id: str, uscc: str, **overrides: str) -> dict[str, str]:
    """One inspections row: a passed test in June 2026."""
    row = {"检测编号": inspection_id, "统一社会信用代码": uscc, "样品名称": "进口奶粉",
           "检测日期": "2026-06-01", "检测结论": "pass", "严重程度": ""}
    return {**row, **overrides}


def csv_bytes(rows: Sequence[Mapping[str, str]]) -> bytes:
    """UTF-8 CSV with the first row's keys as the header."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


# --- the world -----------------------------------------------------------------------------


class CouncilWorld:
    """Storage on local disk under ``root``, the project's real configuration, and a clock
    that lands each upload one minute after the last."""

    def __init__(self, root: Path, *, storage: Storage | None = None,
                 settings: Settings | None = None) -> None:
        self.storage = storage or LocalStorage(root / "registry")
        self.settings = settings or Settings(_env_file=None, read_in_worker=False)
        self.clock = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
        self._uploads = 0

    def upload(self, region: str, dataset: str, rows: Sequence[Mapping[str, str]] | bytes, *,
               name: str | None = None, at: datetime | None = None) -> str:
        """Land a file at ``landing/{region}/{dataset}/{name}`` and return its key. The
        landing object's last-modified time is ``at``, or the next minute of the clock."""
        self._uploads += 1
        data = rows if isinstance(rows, bytes) else csv_bytes(rows)
        key = f"{layout.landing_prefix(region, dataset)}{name or f'upload-{self._uploads}.csv'}"
        self.storage.write_bytes(key, data)
        if at is None:
            self.clock += timedelta(minutes=1)
            at = self.clock
        if isinstance(self.storage, LocalStorage):
            os.utime(self.storage.root / key, (at.timestamp(), at.timestamp()))
        return key

    def ingest(self, keys: Sequence[str] | None = None) -> dict[str, UploadResult]:
        """Ingest every pending upload (or only ``keys``, in that order) and return the results
        by landing key."""
        if keys is None:
            results = ingest_pending(self.storage, self.settings).results
        else:
            results = [ingest_object(self.storage, self.settings, key) for key in keys]
        return {r.key: r for r in results}

    def three_listed(self, region: str) -> tuple[str, str, str]:
        """The codes of three merchants ``region`` files ({region}-1 to -3, every commitment
        made), ingested and published: the opening of many stories."""
        x, y, z = (merchant_code(region, n) for n in (1, 2, 3))
        self.upload(region, "merchants", [filing(region, f"{region}-1", x),
                                          filing(region, f"{region}-2", y),
                                          filing(region, f"{region}-3", z)])
        self.ingest()
        self.publish()
        return x, y, z

    def ingest_accepted(self, key: str, rows: int) -> dict[str, Any]:
        """Ingest every pending upload and return the receipt of ``key``, all of whose ``rows``
        must have been accepted (else the file's errors, or its row errors, are shown: row,
        column, value, code)."""
        receipt = self.receipt(self.ingest()[key])
        assert (receipt["accepted"], receipt["row_errors"]) == (rows, []), [
            (e["code"], e["message_en"]) for e in receipt.get("file_errors") or []] or [
            (e["row"], e["column"], e["value"], e["code"]) for e in receipt["row_errors"]]
        return receipt

    def pending(self) -> list[str]:
        return list_pending(self.storage, self.settings)

    def publish(self, as_of: date = AS_OF) -> PublishResult:
        return publish_snapshot(self.storage, self.settings, as_of=as_of)

    def merchants(self) -> dict[str, dict[str, Any]]:
        """The latest snapshot's merchants, by USCC, as a consumer app reads them."""
        table = open_snapshot(self.storage).merchants.collect()
        return {row["uscc"]: row for row in table.iter_rows(named=True)}

    def merchant(self, uscc: str) -> dict[str, Any] | None:
        """One merchant of the latest snapshot, or None when it is not listed."""
        return self.merchants().get(uscc)

    def complaints_summary(self) -> dict[tuple[str, str, date], dict[str, Any]]:
        """The latest snapshot's joint complaint analysis, by (region, category, month)."""
        table = open_snapshot(self.storage).complaints_summary.collect()
        return {(row["region"], row["category"], row["month"]): row
                for row in table.iter_rows(named=True)}

    def changes(self) -> dict[str, str]:
        """USCC -> change of the latest snapshot's delta."""
        table = open_snapshot(self.storage).changes.collect()
        return dict(zip(table["uscc"], table["change"], strict=True))

    def receipt(self, result: UploadResult) -> dict[str, Any]:
        """The JSON receipt the council finds for ``result``."""
        assert result.upload_id is not None and result.region is not None
        return json.loads(self.storage.read_bytes(
            result.receipt))
