"""The ingest flow (DESIGN.md §5, §9): one mapped task per pending landing object.

Each task calls :func:`registry.ingest.ingest_object`, which is idempotent at every step, so a
retried or re-run task never duplicates a batch. Tasks are tagged ``region:{R}``: a Prefect
tag concurrency limit (``prefect concurrency-limit create region:SH 2``) caps how many uploads
of one council are ingested at once; without one, the task runner's own limit applies.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.tasks import exponential_backoff

from registry.ingest import IngestSummary, UploadResult, ingest_object, list_pending, region_of_key
from registry.settings import load_settings
from registry.storage import StorageError, open_storage


def _storage_failure(task: Any, task_run: Any, state: Any) -> bool:
    """Retry storage failures (the object store was unavailable); a bug will not heal."""
    try:
        state.result()
    except StorageError:
        return True
    except Exception:
        return False
    return False


@task(name="list-pending-uploads", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def pending_uploads(region: str | None, dataset: str | None) -> list[str]:
    settings = load_settings()
    return list_pending(open_storage(settings), settings, region, dataset)


@task(
    name="ingest-upload",
    cache_policy=NO_CACHE,
    retries=4,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
    retry_condition_fn=_storage_failure,
)
def ingest_upload(key: str) -> UploadResult:
    settings = load_settings()
    return ingest_object(open_storage(settings), settings, key)


@flow(name="ingest")
def ingest_flow(region: str | None = None, dataset: str | None = None) -> dict[str, Any]:
    """Ingest every pending upload (optionally of one region and dataset); return the
    summary as JSON-ready data (``results`` and ``by_region``)."""
    keys = pending_uploads(region, dataset)
    futures = [
        ingest_upload.with_options(tags={f"region:{region_of_key(key)}"}).submit(key)
        for key in keys
    ]
    wait(futures)
    return IngestSummary([future.result() for future in futures]).as_dict()
