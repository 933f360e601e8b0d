"""The run summary a data engineer reads in the Prefect UI: counts per region, batch ids, held
batches, the snapshot and its report, and nothing a council would not want shown."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from staged_rows import merchant, stage_batch

from flows.summary import HeldBatch, held_batches, run_summary_markdown
from registry.ingest.pipeline import IngestSummary, UploadResult
from registry.publish import PublishResult
from registry.storage import Storage
from registry.storage.layout import report_key

INGESTED = IngestSummary([
    UploadResult("landing/SH/merchants/张三的备案.csv", "SH", "merchants", "staged",
                 upload_id="B-SH-1", batch_id="B-SH-1", rows_in=10, accepted=4, quarantined=6),
    UploadResult("landing/SH/complaints/c.xlsx", "SH", "complaints", "duplicate",
                 upload_id="U-SH-2"),
    UploadResult("landing/SH/merchants/all.csv", "SH", "merchants", "staged",
                 upload_id="B-SH-3", batch_id="B-SH-3", rows_in=5, accepted=5, held=True),
    UploadResult("landing/JS/merchants/bad.csv", "JS", "merchants", "rejected",
                 upload_id="U-JS-1", file_error="UNKNOWN_COLUMN"),
])
PUBLISHED = PublishResult(
    snapshot_id="20261130T020000Z-abcdef12", manifest_key="registry/snapshots/x/_manifest.json",
    seq=7, as_of=date(2026, 11, 30), previous_snapshot="20261129T020000Z-12345678",
    rows={"merchants": 120, "products": 8, "changes": 3},
    trusted_by_grade={"A": 40, "B": 50}, changes={"added": 2, "updated": 1},
    report=report_key("20261130T020000Z-abcdef12"),
)


def _region_row(markdown: str, region: str) -> list[str]:
    """The region's row of the per-region table (the one with ten columns)."""
    rows = [[cell.strip() for cell in line.strip("|").split("|")]
            for line in markdown.splitlines() if line.startswith(f"| {region} |")]
    [row] = [r for r in rows if len(r) == 10]
    return row


def test_ingest_counts_per_region_with_batch_ids_and_rejected_files() -> None:
    markdown = run_summary_markdown(ingested=INGESTED)
    assert markdown.startswith("# Registry run: ingest\n")
    # region, staged, held, rejected, duplicates, in progress, skipped, rows in, accepted,
    # quarantined: a held batch is counted apart from the publishable ones.
    assert _region_row(markdown, "SH") == ["SH", "1", "1", "0", "1", "0", "0", "15", "9", "6"]
    assert _region_row(markdown, "JS") == ["JS", "0", "0", "1", "0", "0", "0", "0", "0", "0"]
    assert "| files staged | files held |" in markdown
    assert "| SH | merchants | B-SH-1 | released | 4 | 6 |" in markdown
    assert "| SH | merchants | B-SH-3 | held | 5 | 0 |" in markdown
    assert "| JS | merchants | U-JS-1 | UNKNOWN_COLUMN |" in markdown
    assert "## Snapshot" not in markdown


def test_no_council_file_name_reaches_the_summary() -> None:
    markdown = run_summary_markdown(ingested=INGESTED, published=PUBLISHED)
    for result in INGESTED.results:
        assert result.key.rsplit("/", 1)[-1] not in markdown
    assert "张三" not in markdown


def test_failed_uploads_are_counted_per_region_and_said_to_stay_pending() -> None:
    markdown = run_summary_markdown(ingested=IngestSummary([]), failed={"ZJ": 2, "AH": 1})
    assert "**3 upload(s) failed after retries** (AH 1, ZJ 2)" in markdown
    assert "stay pending" in markdown


def test_the_snapshot_section_names_the_snapshot_and_its_report() -> None:
    markdown = run_summary_markdown(published=PUBLISHED)
    assert markdown.startswith("# Registry run: publish\n")
    assert f"`{PUBLISHED.snapshot_id}` (log seq 7, as_of 2026-11-30)" in markdown
    assert "`reports/20261130T020000Z-abcdef12/index.html`" in markdown
    assert "previous: `20261129T020000Z-12345678`" in markdown
    assert "trusted by grade: A 40, B 50" in markdown


def test_a_report_that_was_not_written_is_said_so_with_the_fix() -> None:
    markdown = run_summary_markdown(published=replace(PUBLISHED, report=None))
    assert ("report: **not written**; rebuild it with "
            "`registry report 20261130T020000Z-abcdef12`") in markdown


def test_held_batches_are_listed_with_reasons_and_table_safe() -> None:
    held = [HeldBatch("B2", "merchants", "SH", ("row_count_below_floor", "a|b"))]
    markdown = run_summary_markdown(ingested=IngestSummary([]), held=held)
    assert "1 batch(es) are held" in markdown
    assert "| SH | merchants | B2 | row_count_below_floor, a\\|b |" in markdown
    assert "None: every committed batch is released." in run_summary_markdown()


def test_held_batches_are_those_held_and_not_yet_released(storage: Storage) -> None:
    stage_batch(storage, "merchants", "SH", "B1", [merchant()])
    stage_batch(storage, "merchants", "SH", "B3", [merchant()], status="held")
    stage_batch(storage, "merchants", "SH", "B2", [merchant()], status="held", released=True)
    stage_batch(storage, "merchants", "AH", "B4", [merchant(city="合肥")], status="held")
    assert held_batches(storage) == [
        HeldBatch("B4", "merchants", "AH", ("batch_row_count",)),
        HeldBatch("B3", "merchants", "SH", ("batch_row_count",)),
    ]
