"""The default ingest runner holds a bounded number of uploads in memory at once: Prefect's own
thread pool would start one thread per pending upload (hundreds at benchmark tier L)."""

from __future__ import annotations

from prefect.task_runners import ThreadPoolTaskRunner

from flows.ingest import ingest_task_runner
from registry.config.settings import Settings


def test_the_thread_pool_is_bounded_by_the_setting() -> None:
    default = ingest_task_runner(Settings(_env_file=None))
    assert isinstance(default, ThreadPoolTaskRunner)
    assert default._max_workers == 2
    assert ingest_task_runner(Settings(_env_file=None, ingest_threads=5))._max_workers == 5
