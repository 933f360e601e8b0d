"""The index of the snapshots' reports (``reports/index.html``): every committed snapshot's
report, newest first, kept up to date by each report written and each one gc removes, at a
cost that does not grow with the number of snapshots ever published."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from counted_reads import CountingReads
from staged_rows import AS_OF, PROJECT_ROOT, stage_three_regions

from registry.config.settings import Settings
from registry.publish import collect_garbage, publish_snapshot
from registry.report import write_report
from registry.storage import Storage
from registry.storage.layout import LOG_PREFIX, REPORTS_PREFIX, report_key, reports_index_key

pytestmark = pytest.mark.backends("local", "s3")


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, schemas_dir=PROJECT_ROOT / "schemas")


def listed(storage: Storage) -> list[str]:
    """The snapshot ids the index links to, in its order."""
    page = storage.read_bytes(reports_index_key()).decode("utf-8")
    return re.findall(r'class="report-link" href="([^"/]+)/index\.html"', page)


def test_a_publication_lists_its_report_without_reading_the_log(storage: Storage, settings):
    """After four publications, the fifth's report is listed first, and publishing it read
    the commit log's next entry only (to find that latest is its head), and asked after no
    older snapshot's manifest or report."""
    stage_three_regions(storage)
    ids = [publish_snapshot(storage, settings, as_of=AS_OF + timedelta(days=d)).snapshot_id
           for d in range(4)]
    assert listed(storage) == ids[::-1]
    counting = CountingReads(storage)
    fifth = publish_snapshot(counting, settings, as_of=AS_OF + timedelta(days=4)).snapshot_id
    assert listed(storage) == [fifth, *ids[::-1]]
    assert list(counting.log_reads) == [f"{LOG_PREFIX}{5:020d}.json"]
    asked = {key for key in counting.heads if key.startswith(REPORTS_PREFIX)
             or "/snapshots/" in key}
    assert not {key for key in asked for old in ids if old in key}, asked


def test_a_report_rebuilt_is_listed_once_and_a_missing_list_is_rebuilt_from_the_log(
        storage: Storage, settings):
    """A store whose reports were written before the list (or whose list was lost): the next
    report written lists every committed snapshot with a report, from the log."""
    stage_three_regions(storage)
    first, second = (publish_snapshot(storage, settings, as_of=AS_OF + timedelta(days=d))
                     for d in range(2))
    write_report(storage, settings, first.snapshot_id)
    assert listed(storage) == [second.snapshot_id, first.snapshot_id]
    for key in ("reports/index.json", reports_index_key()):
        storage.delete(key)
    storage.delete(report_key(first.snapshot_id))
    write_report(storage, settings, second.snapshot_id)
    assert listed(storage) == [second.snapshot_id]
    write_report(storage, settings, first.snapshot_id)
    assert listed(storage) == [second.snapshot_id, first.snapshot_id]


def test_gc_takes_the_reports_it_removes_off_the_index(storage: Storage, settings):
    stage_three_regions(storage)
    ids = [publish_snapshot(storage, settings, as_of=AS_OF + timedelta(days=d)).snapshot_id
           for d in range(4)]
    settings = settings.model_copy(update={"snapshot_retention": 2})
    removed = collect_garbage(storage, settings, now=datetime.now(UTC) + timedelta(days=400))
    assert set(removed.expired_removed) == set(ids[:2])
    assert listed(storage) == [ids[3], ids[2]]
