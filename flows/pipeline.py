"""The pipeline flow: ingest every pending upload, then publish (``registry run``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import flow

from flows.ingest import ingest_flow
from flows.publish import publish_flow


@flow(name="pipeline")
def pipeline_flow(as_of: date | None = None) -> dict[str, Any]:
    """Ingest everything pending, then publish; returns both summaries. A failed ingest
    stops the run before publication."""
    ingested = ingest_flow()
    published = publish_flow(as_of=as_of)
    return {"ingest": ingested, "publish": published}
