"""``registry demo``: sample council uploads for every region, put where councils put them.

The CLI then runs the pipeline flow (ingest, then publish) over them and prints
:func:`demo_summary`. The sample files depend on the seed and on the day: the same seed on the
same day sends the same bytes again, which the ingest ledger recognises as duplicates (nothing
is ingested twice); another seed, or another day, sends new content.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from registry import ledger
from registry.config.contracts import load_contracts
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.demo.samples import SampleFile, SampleSizes, write_sample_uploads
from registry.ingest.pipeline import IngestSummary
from registry.storage import Storage, layout

# "A few thousand rows per dataset": enough for every kind of bad row to show up in every
# region, small enough that the demo runs in well under a minute after Prefect has started.
DEMO_SIZES = SampleSizes(merchants=4000, complaints=6000, inspections=2000, gift_evaluations=2000)
# An upsert dataset arrives in this many files per region (a complete list in one): enough to
# show several files and formats per region; every file costs a batch gate of its own.
DEMO_PARTS = 2


@dataclass(frozen=True)
class DemoUpload:
    key: str
    sample: SampleFile


def upload_demo_samples(
    storage: Storage, settings: Settings, *, seed: int, today: date,
    sizes: SampleSizes = DEMO_SIZES,
) -> list[DemoUpload]:
    """Generate the sample uploads of every configured region and write each one to
    ``landing/{region}/{dataset}/demo-{run}/{file}``, a new folder per call (so every run's
    uploads are pending, on any backend). Returns the keys with what the ingest must make of
    each file."""
    run = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    uploads = []
    with tempfile.TemporaryDirectory(prefix="registry-demo-") as tmp:
        files = write_sample_uploads(
            Path(tmp), load_regions(settings.config_dir), load_contracts(settings.schemas_dir),
            sizes, seed=seed, today=today, parts=DEMO_PARTS,
        )
        for sample in files:
            key = f"{layout.landing_prefix(sample.region, sample.dataset)}demo-{run}/" \
                  f"{sample.path.name}"
            storage.write_bytes(key, sample.path.read_bytes())
            uploads.append(DemoUpload(key, sample))
    return uploads


@dataclass(frozen=True)
class RegionSummary:
    uploads: int = 0
    staged: int = 0
    held: int = 0  # staged but held out of publication by the batch gate (not in ``staged``)
    duplicate: int = 0
    rejected_files: int = 0
    rows_in: int = 0
    accepted: int = 0
    quarantined: int = 0
    planted_bad: int = 0  # rows the generator made bad: what quarantined should equal


_STATUS_COUNTS = {"staged": "staged", "duplicate": "duplicate", "rejected": "rejected_files"}


def demo_summary(uploads: list[DemoUpload], ingested: IngestSummary
                 ) -> dict[str, RegionSummary]:
    """Per region: what the ingest made of this demo's uploads, beside the bad rows planted in
    them. Uploads that were not this demo's (pending in landing/ before) are left out."""
    planted = {u.key: u.sample.rejected for u in uploads}
    totals: dict[str, Counter[str]] = {}
    for result in ingested.results:
        if result.key not in planted:
            continue
        counts = totals.setdefault(result.region or "?", Counter())
        counts["uploads"] += 1
        if result.held:
            counts["held"] += 1
        elif result.status in _STATUS_COUNTS:
            counts[_STATUS_COUNTS[result.status]] += 1
        counts["rows_in"] += result.rows_in
        counts["accepted"] += result.accepted
        counts["quarantined"] += result.quarantined
        if result.status == "staged":
            counts["planted_bad"] += planted[result.key]
    return {region: RegionSummary(**counts) for region, counts in sorted(totals.items())}


def rejection_codes(storage: Storage, ingested: IngestSummary) -> Counter[str]:
    """How often each rejection code was given, over the staged batches of ``ingested``
    (from their batch records)."""
    codes: Counter[str] = Counter()
    for result in ingested.results:
        if result.status != "staged" or not result.batch_id:
            continue
        record = ledger.read_batch_record(storage, result.dataset, result.region,
                                          result.batch_id)
        if record is not None:
            codes.update(record.error_counts)
    return codes
