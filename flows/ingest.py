"""The ingest flow (docs/architecture.md §4, §14): one mapped task per pending landing object.

Each task calls :func:`registry.ingest.pipeline.ingest_object`, which is idempotent at every
step, so a retried or re-run task never duplicates a batch. Storage failures are retried with
exponential backoff; anything else fails the task at once (a bug does not heal by waiting).

Tasks are tagged ``region:{R}``: the tag concurrency limits that ``registry orchestration
setup`` creates cap how many uploads of one council are ingested at once, so one council's
backlog cannot starve the others. Without such a limit the task runner's own width applies.

The task runner comes from the settings (``REGISTRY_TASK_RUNNER``): Prefect's thread pool by
default, ``REGISTRY_INGEST_THREADS`` uploads at a time (each holds its file and its rows in
memory), or prefect-dask's ``DaskTaskRunner`` on the cluster at ``REGISTRY_DASK_ADDRESS`` (else
on a local cluster started for the run), to spread the per-file work over many machines.

On the thread pool the batch gate's Data Docs are gathered from every upload and built and
stored once, at the end of the run (``store-data-docs``); a task on a Dask worker stores its
batch's own.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.futures import as_completed, wait
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from flows.summary import HeldBatch, held_batches_now, run_summary_markdown
from registry.config.settings import Settings, load_settings
from registry.ingest.pipeline import (
    IngestSummary,
    UploadResult,
    ingest_object,
    list_pending,
    region_of_key,
)
from registry.ingest.read_worker import close_idle_workers
from registry.orchestration import announce_ingest, region_tag
from registry.progress import ProgressCallback
from registry.quality import data_docs as quality_data_docs
from registry.quality import write_scorecards
from registry.quality.runner import PendingDataDocs
from registry.storage import StorageError, open_storage

ARTIFACT_KEY = "registry-ingest"


def ingest_task_runner(settings: Settings) -> TaskRunner:
    """The task runner ``settings`` ask for: a thread pool, or Dask (existing cluster or local)."""
    if settings.task_runner == "dask":
        from prefect_dask import DaskTaskRunner

        if settings.dask_address:
            return DaskTaskRunner(address=settings.dask_address)
        return DaskTaskRunner()
    return ThreadPoolTaskRunner(max_workers=settings.ingest_threads)


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
def ingest_upload(key: str, data_docs: PendingDataDocs | None = None) -> UploadResult:
    settings = load_settings()
    result = ingest_object(open_storage(settings), settings, key, data_docs=data_docs)
    # Ids and counts only: a file name can carry a person's name, a log line must not.
    get_run_logger().info(
        "%s %s upload %s: %s, batch %s, %d rows in, %d accepted, %d quarantined%s",
        result.region, result.dataset, result.upload_id, result.status, result.batch_id,
        result.rows_in, result.accepted, result.quarantined,
        f", file rejected: {result.file_error}" if result.file_error else "",
    )
    return result


@task(name="store-data-docs", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def store_data_docs(data_docs: PendingDataDocs) -> int:
    return len(quality_data_docs.upload_data_docs(open_storage(load_settings()), data_docs))


def _pending_data_docs() -> PendingDataDocs | None:
    """Where this run's upload tasks keep their batches' Data Docs, when the tasks run in this
    process (Prefect's thread pool); None on Dask, whose workers store each batch's own."""
    context = FlowRunContext.get()
    in_process = context is not None and isinstance(context.task_runner, ThreadPoolTaskRunner)
    return PendingDataDocs() if in_process else None


@task(name="quality-scorecards", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def quality_scorecards(batches: list[tuple[str, str, str]]) -> dict[str, str]:
    settings = load_settings()
    return write_scorecards(open_storage(settings), settings, batches)


@task(name="announce-ingest", cache_policy=NO_CACHE)
def announce_ingest_task(results: list[UploadResult], held: list[HeldBatch], staged: bool
                         ) -> int:
    reasons = {h.batch_id: h.reasons for h in held}
    return len(announce_ingest(results, reasons, staged=staged))


@flow(name="ingest", task_runner=ingest_task_runner(load_settings()))
def ingest_flow(
    region: str | None = None,
    dataset: str | None = None,
    progress: ProgressCallback | None = None,
    announce_staged: bool = True,
) -> IngestSummary:
    """Ingest every pending upload into staged and quarantined batches, one task per upload,
    publish a summary artifact (``registry-ingest``), and send the run's events
    (:func:`registry.orchestration.ingest_events`): batches staged (the publish deployment's
    trigger), batches held and files rejected (the notification automations).

    Args:
        region: Only this council's uploads (a region code of config/regions.yaml, e.g. SH).
            Default: every region.
        dataset: Only this dataset (merchants, complaints, inspections, gift_evaluations).
            Default: every dataset.
        progress: Told of each upload as it finishes (the CLI draws a bar with it).
        announce_staged: Send ``registry.batches.staged`` for the staged batches. Off when a
            publication follows in the same run (the pipeline flow).

    Returns the outcome of every upload. Raises after the summary is published when an upload
    still fails after its retries (that upload stays pending for the next run), or when the
    batches' Data Docs could not be stored.
    """
    keys = pending_uploads(region, dataset)
    data_docs = _pending_data_docs()
    futures = [
        ingest_upload.with_options(tags={region_tag(region_of_key(key) or "unknown")}).submit(
            key, data_docs)
        for key in keys
    ]
    if progress is not None:
        progress("ingest: uploads", 0, len(futures))
        for done, _ in enumerate(as_completed(futures), start=1):
            progress("ingest: uploads", done, len(futures))
    wait(futures)
    # Reading workers are reused within a run; between runs they would only hold memory.
    close_idle_workers()
    # A failure to store them fails the run, but only after its summary and events.
    docs_stored = store_data_docs(data_docs, return_state=True) if data_docs else None
    outcomes = [future.result(raise_on_failure=False) for future in futures]
    summary = IngestSummary([o for o in outcomes if isinstance(o, UploadResult)])
    failed = Counter(
        region_of_key(key) or "?" for key, o in zip(keys, outcomes, strict=True)
        if not isinstance(o, UploadResult)
    )
    if summary.results:
        quality_scorecards(summary.batches())
    held = held_batches_now()
    create_markdown_artifact(
        run_summary_markdown(ingested=summary, failed=failed, held=held),
        key=ARTIFACT_KEY,
        description="Uploads ingested per region, staged batch ids, held batches",
    )
    announce_ingest_task(summary.results, held, announce_staged)
    if failed:
        # Re-raise the first failure so the run is marked failed, with its real cause.
        for future in futures:
            future.result()
    if docs_stored is not None:
        docs_stored.result()
    return summary
