"""What a data engineer sees of one orchestrated run (docs/architecture.md §14): a markdown
summary that the flows publish as a Prefect artifact.

The summary names regions, datasets, batch ids and the snapshot, and counts rows and files. It
never names a council's file or shows a row's content: receipts are where a council sees those,
and an artifact is visible to everyone with access to the Prefect UI.

:func:`run_summary_markdown` is pure. :func:`held_batches` at the bottom is the only I/O here,
and :func:`held_batches_now` its task, which every flow's summary reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE

from registry import ledger
from registry.config.settings import load_settings
from registry.storage import Storage, open_storage

if TYPE_CHECKING:
    # Only named here: the ingest flow does not load the publisher, nor the publish flow the
    # readers of council files.
    from registry.ingest.pipeline import IngestSummary
    from registry.publish import PublishResult

# Upload outcomes, in the order the table shows them, with their column headings
# (IngestSummary.by_region: "staged" is staged and publishable, "held" staged but held).
_UPLOAD_COLUMNS = {
    "staged": "files staged",
    "held": "files held",
    "rejected": "files rejected",
    "duplicate": "duplicates",
    "in_progress": "in progress elsewhere",
    "skipped": "skipped",
}


@dataclass(frozen=True)
class HeldBatch:
    """A committed batch that the batch-level gate held back: it is not published until someone
    releases it (:func:`registry.quality.release_batch`)."""

    batch_id: str
    dataset: str
    region: str
    reasons: tuple[str, ...] = ()


def _cell(value: object) -> str:
    # A pipe or a line break inside a value would break the markdown table.
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)
    return lines


def _ingest_section(summary: IngestSummary, failed: Mapping[str, int]) -> list[str]:
    lines = ["## Ingest", ""]
    if failed:
        lines += [
            f"**{sum(failed.values())} upload(s) failed after retries** ("
            + ", ".join(f"{region} {n}" for region, n in sorted(failed.items()))
            + "): they stay pending for the next run; the task runs' logs say why.",
            "",
        ]
    if not summary.results:
        return [*lines, "No upload was processed.", ""]
    by_region = summary.by_region()
    header = ["region", *_UPLOAD_COLUMNS.values(), "rows in", "accepted rows",
              "quarantined rows"]
    rows = [
        [region, *(totals.get(status, 0) for status in _UPLOAD_COLUMNS),
         totals["rows_in"], totals["accepted"], totals["quarantined"]]
        for region, totals in sorted(by_region.items())
    ]
    lines += [*_table(header, rows), ""]
    batches = sorted(
        (r for r in summary.results if r.batch_id),
        key=lambda r: (r.region or "", r.dataset or "", r.batch_id or ""),
    )
    if batches:
        lines += ["Batches staged (a held one is not published until released):", ""]
        lines += _table(
            ["region", "dataset", "batch", "gate", "accepted rows", "quarantined rows"],
            ([r.region, r.dataset, r.batch_id, "held" if r.held else "released", r.accepted,
              r.quarantined] for r in batches),
        )
        lines.append("")
    rejected = sorted(
        (r for r in summary.results if r.status == "rejected"),
        key=lambda r: (r.region or "", r.dataset or "", r.upload_id or ""),
    )
    if rejected:
        lines += ["Files rejected whole (the council's receipt says why):", ""]
        lines += _table(
            ["region", "dataset", "upload", "code"],
            ([r.region, r.dataset, r.upload_id, r.file_error] for r in rejected),
        )
        lines.append("")
    return lines


def _held_section(held: Sequence[HeldBatch]) -> list[str]:
    lines = ["## Held batches", ""]
    if not held:
        return [*lines, "None: every committed batch is released.", ""]
    lines += [f"{len(held)} batch(es) are held and not published until released:", ""]
    lines += _table(
        ["region", "dataset", "batch", "reasons"],
        ([h.region, h.dataset, h.batch_id, ", ".join(h.reasons) or "-"]
         for h in sorted(held, key=lambda h: (h.region, h.dataset, h.batch_id))),
    )
    return [*lines, ""]


def _snapshot_section(result: PublishResult) -> list[str]:
    lines = [
        "## Snapshot",
        "",
        *([] if result.published else
          ["Nothing new since the latest snapshot: it was not published again.", ""]),
        f"- snapshot: `{result.snapshot_id}` (log seq {result.seq}, as_of {result.as_of})",
        f"- previous: `{result.previous_snapshot}`" if result.previous_snapshot
        else "- previous: none (first snapshot)",
        f"- manifest: `{result.manifest_key}`",
        f"- report: `{result.report}`" if result.report
        else f"- report: **not written**; rebuild it with `registry report {result.snapshot_id}`",
        "- rows: " + ", ".join(f"{name} {n}" for name, n in result.rows.items()),
        "- trusted by grade: "
        + (", ".join(f"{g} {n}" for g, n in result.trusted_by_grade.items()) or "none"),
        "- changes: " + (", ".join(f"{k} {n}" for k, n in result.changes.items()) or "none"),
        "",
    ]
    return lines


def run_summary_markdown(
    *,
    ingested: IngestSummary | None = None,
    failed: Mapping[str, int] | None = None,
    published: PublishResult | None = None,
    held: Sequence[HeldBatch] = (),
) -> str:
    """The markdown of one run: per-region upload and row counts (held batches counted apart
    from publishable ones) with the staged batch ids and the gate's outcome for each, and the
    uploads that failed (``failed``, per region) when the run ingested; the batches held
    back by the gate; the published snapshot with its report path when the run published.
    Raises nothing; an empty run says so."""
    title = " + ".join(
        part for part, done in (("ingest", ingested is not None),
                                ("publish", published is not None)) if done
    ) or "nothing"
    lines = [f"# Registry run: {title}", ""]
    if ingested is not None:
        lines += _ingest_section(ingested, failed or {})
    lines += _held_section(held)
    if published is not None:
        lines += _snapshot_section(published)
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------------------------------------
# Reading the batch records (the I/O edge of this module)


def held_batches(storage: Storage) -> list[HeldBatch]:
    """Every batch the gate held that nobody has released yet
    (:func:`registry.ledger.held_batches`), sorted by region, dataset and ledger order."""
    return [
        HeldBatch(batch_id=r.batch_id, dataset=r.dataset, region=r.region,
                  reasons=tuple(r.held_reasons))
        for r in ledger.held_batches(storage)
    ]


@task(name="held-batches", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def held_batches_now() -> list[HeldBatch]:
    return held_batches(open_storage(load_settings()))
