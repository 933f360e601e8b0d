"""The pipeline flow (``registry run``): ingest every pending upload, then publish."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from flows.ingest import ingest_flow
from flows.publish import latest_if_unchanged, publish_flow
from flows.summary import held_batches_now, run_summary_markdown
from registry.progress import ProgressCallback

ARTIFACT_KEY = "registry-pipeline"


@flow(name="pipeline")
def pipeline_flow(as_of: date | None = None, progress: ProgressCallback | None = None
                  ) -> dict[str, Any]:
    """Ingest the pending uploads of every region concurrently (one ingest run, one task per
    upload, each region capped by its tag limit), then publish; publish a summary artifact of
    both (``registry-pipeline``).

    Args:
        as_of: Score as of this date (ISO, e.g. 2026-11-30). Default: today in Asia/Shanghai.
        progress: Told of each upload ingested and each publication stage (the CLI's bar).

    When nothing is new since the latest snapshot (no batch committed or released since, the
    same ``as_of``), nothing is published and ``publish`` describes latest, its ``published``
    False; no publish run is started (``latest_if_unchanged``), so none waits for the
    single-writer slot.

    Returns ``{"ingest": IngestSummary, "publish": PublishResult}``. An ingest that fails stops
    the run before publication. A refused publication raises ``PublishRefused`` (Prefect
    re-raises the publish subflow's own exception), with the ingested batches committed.
    """
    # This run publishes next: no registry.batches.staged to trigger a second publication.
    ingested = ingest_flow(progress=progress, announce_staged=False)
    # A run with nothing new (no upload, the same day) leaves latest as it is, and starts no
    # publish run: on a 10-minute schedule, most runs are such runs.
    published = latest_if_unchanged(as_of) or publish_flow(
        as_of=as_of, progress=progress, only_if_changed=True)
    create_markdown_artifact(
        run_summary_markdown(ingested=ingested, published=published, held=held_batches_now()),
        key=ARTIFACT_KEY,
        description="Uploads ingested per region, held batches, and the published snapshot",
    )
    return {"ingest": ingested, "publish": published}
