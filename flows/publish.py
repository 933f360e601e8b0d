"""The publish flow (docs/architecture.md §11, §14): build the registry and publish one snapshot.

Publication is single-writer. The flow holds the one slot of the Prefect global concurrency
limit ``registry-publish`` (``registry orchestration setup`` creates it) while it publishes, so
a scheduled and a manual run queue behind each other. Where the limit does not exist (an
ephemeral API, a server not set up yet) Prefect logs a warning and the run goes on: the
create-if-absent commit log still refuses a second writer, which then fails with
``ConcurrentPublish`` and leaves latest to the first.
"""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from flows.summary import held_batches_now, run_summary_markdown
from registry.config.settings import load_settings
from registry.orchestration import PUBLISH_LIMIT, announce_snapshot
from registry.progress import ProgressCallback
from registry.publish import PublishResult, publish_snapshot, unchanged_publication
from registry.storage import open_storage

ARTIFACT_KEY = "registry-publish"


# No retries: a publish that failed part-way leaves an orphan for gc, and the next run starts
# over from the commit log. No cache: every run must publish.
@task(name="publish-snapshot", cache_policy=NO_CACHE)
def publish_snapshot_task(as_of: date | None, progress: ProgressCallback | None = None,
                          full: bool = False, only_if_changed: bool = False) -> PublishResult:
    settings = load_settings()
    return publish_snapshot(open_storage(settings), settings, as_of=as_of, progress=progress,
                            full=full, only_if_changed=only_if_changed)


def latest_if_unchanged(as_of: date | None = None) -> PublishResult | None:
    """Latest's description when a publication now would give its snapshot again
    (:func:`registry.publish.unchanged_publication`, read without writing), else None: then
    only :func:`publish_flow` decides, under the single-writer slot. Not a task: a run with
    nothing new asks it once and starts nothing."""
    settings = load_settings()
    return unchanged_publication(open_storage(settings), settings, as_of)


@task(name="announce-snapshot", cache_policy=NO_CACHE)
def announce_snapshot_task(result: PublishResult) -> None:
    announce_snapshot(result)


@flow(name="publish")
def publish_flow(as_of: date | None = None, progress: ProgressCallback | None = None,
                 full: bool = False, only_if_changed: bool = False) -> PublishResult:
    """Build the registry from every publishable staged batch, publish it as a new snapshot,
    publish a summary artifact (``registry-publish``), and send
    ``registry.snapshot.published`` (the notification automations).

    Args:
        as_of: Score as of this date (ISO, e.g. 2026-11-30). Default: today in Asia/Shanghai.
        progress: Told of each publication stage (the CLI draws a bar with it).
        full: Rebuild the current state from every staged batch instead of bringing it
            forward from the batches committed since the last publication (same data files).
        only_if_changed: Publish nothing when the snapshot would be latest's again (the same
            as_of, nothing new in the ledger); the result then describes latest.

    Raises ``PublishRefused`` (nothing published) when the output fails its checks, and
    ``ConcurrentPublish`` when another writer committed first.
    """
    logger = get_run_logger()
    logger.info("waiting for the %s concurrency slot (single writer)", PUBLISH_LIMIT)
    with concurrency(PUBLISH_LIMIT, occupy=1):
        result = publish_snapshot_task(as_of, progress, full, only_if_changed)
    if not result.published:
        logger.info("nothing new since snapshot %s (as_of %s): not published again",
                    result.snapshot_id, result.as_of)
        return result
    logger.info(
        "published snapshot %s (log seq %d, as_of %s, previous %s, rows %s); report %s",
        result.snapshot_id, result.seq, result.as_of, result.previous_snapshot,
        result.rows, result.report or "NOT written",
    )
    create_markdown_artifact(
        run_summary_markdown(published=result, held=held_batches_now()),
        key=ARTIFACT_KEY,
        description="Published snapshot, its report, and the batches held back",
    )
    announce_snapshot_task(result)
    return result
