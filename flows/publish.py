"""The publish flow: one task, one registry function (DESIGN.md §7, §9).

Publication is single-writer. The flow holds a slot of the Prefect global concurrency limit
``registry-publish`` (create it once with ``prefect gcl create registry-publish --limit 1``);
where the limit does not exist Prefect warns and runs on, and the create-if-absent commit log
still refuses a second writer.
"""

from __future__ import annotations

from datetime import date

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.concurrency.sync import concurrency

from registry.publish import PublishResult, publish_snapshot
from registry.settings import load_settings
from registry.storage import open_storage

PUBLISH_CONCURRENCY_LIMIT = "registry-publish"


# No retries: a publish that failed part-way leaves an orphan for gc, and the next run starts
# over from the commit log. No cache: every run must publish.
@task(name="publish-snapshot", cache_policy=NO_CACHE)
def publish_snapshot_task(as_of: date | None) -> PublishResult:
    settings = load_settings()
    return publish_snapshot(open_storage(settings), settings, as_of=as_of)


@flow(name="publish")
def publish_flow(as_of: date | None = None) -> PublishResult:
    """Build the registry from every publishable staged batch and publish a snapshot."""
    with concurrency(PUBLISH_CONCURRENCY_LIMIT, occupy=1):
        return publish_snapshot_task(as_of)
