"""Publication on Ceph RGW, a production S3 server: the capability probe refuses a versioned
bucket before anything is written, and sixteen publishers racing on one bucket, each with its
own client, leave one commit per log sequence, no gap, and latest on the highest sequence."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from rgw_fixtures import RgwCluster
from staged_rows import AS_OF, stage_three_regions

from registry.publish import ConcurrentPublish, collect_garbage, publish_snapshot
from registry.publish import protocol as publish_protocol
from registry.quality import registry_results
from registry.snapshot.reader import read_latest, read_log, verify_snapshot
from registry.storage import S3Storage, StoreLacksGuarantees
from registry.storage.layout import SNAPSHOTS_PREFIX

pytestmark = pytest.mark.rgw

PUBLISHERS = 16
ATTEMPTS_EACH = 3


def test_publishing_to_a_versioned_bucket_is_refused_before_writing(
    rgw: RgwCluster, rgw_versioned_bucket: str, settings
) -> None:
    storage = S3Storage(f"s3://{rgw_versioned_bucket}/root", rgw.settings())
    stage_three_regions(storage)
    before = sorted(i.key for i in storage.list())
    with pytest.raises(StoreLacksGuarantees) as info:
        publish_snapshot(storage, settings, as_of=AS_OF)
    message = str(info.value)
    assert "refusing to publish" in message and "versioned bucket" in message
    assert f"s3://{rgw_versioned_bucket}/root" in message
    # Nothing of a snapshot, no log entry, no pointer: only the staged world is there.
    assert sorted(i.key for i in storage.list()) == before
    assert read_latest(storage) is None


@pytest.fixture
def gate_once_per_content(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry gate (Great Expectations, about 2 s of CPU per publisher and serialised
    across threads; tested in tests/quality) runs for real once per distinct merchants table,
    and its verdict is reused for identical tables, so that dozens of attempts take seconds
    and the race is between the storage writes."""
    verdicts: dict[int, list] = {}
    lock = threading.Lock()

    def gate(storage, settings, tables, model, snapshot_id):
        content = tables["merchants"].sha256
        with lock:
            if content not in verdicts:
                verdicts[content] = registry_results(storage, settings, tables, model,
                                                     snapshot_id)
            return verdicts[content]

    monkeypatch.setattr(publish_protocol, "registry_results", gate)


@pytest.mark.slow
def test_sixteen_racing_publishers_leave_one_commit_per_sequence(
    rgw: RgwCluster, rgw_bucket: str, settings, gate_once_per_content,
    record_property: Callable[[str, object], None],
) -> None:
    """Each publisher retries after losing, up to three attempts: every sequence is won by
    exactly one racer, the log has no gap, and latest names its head."""
    root = f"s3://{rgw_bucket}/root"
    stage_three_regions(S3Storage(root, rgw.settings()))
    start = threading.Barrier(PUBLISHERS)
    wins: list[tuple[int, str]] = []
    attempts_before_win: list[int] = []
    losses: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def publisher() -> None:
        storage = S3Storage(root, rgw.settings())  # a client of its own, like a process
        start.wait()
        for attempt in range(ATTEMPTS_EACH):
            try:
                result = publish_snapshot(storage, settings, as_of=AS_OF)
            except ConcurrentPublish as exc:
                with lock:
                    losses.append(str(exc))
                continue
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                return
            with lock:
                wins.append((result.seq, result.snapshot_id))
                attempts_before_win.append(attempt)
            return

    threads = [threading.Thread(target=publisher) for _ in range(PUBLISHERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    storage = S3Storage(root, rgw.settings())
    log = read_log(storage)
    seqs = [seq for seq, _ in wins]
    # One winner per sequence, no gap, and the log names exactly the winners' snapshots.
    assert len(seqs) == len(set(seqs)) >= ATTEMPTS_EACH
    assert sorted(seqs) == [e.seq for e in log] == list(range(1, len(log) + 1))
    assert {e.seq: e.snapshot_id for e in log} == dict(wins)
    # A publisher stops after its first commit or its last attempt: nobody is unaccounted for.
    assert len(wins) + len(losses) == PUBLISHERS * ATTEMPTS_EACH - sum(
        ATTEMPTS_EACH - 1 - i for i in attempts_before_win)
    assert all("was committed by another writer" in loss for loss in losses)
    latest = read_latest(storage)[0]
    assert (latest.seq, latest.snapshot_id) == (log[-1].seq, log[-1].snapshot_id)
    assert verify_snapshot(storage) == []

    # Every loser that got as far as writing left an uncommitted folder; gc removes them all.
    collect_garbage(storage, settings, grace_seconds=0)
    folders = {i.key[len(SNAPSHOTS_PREFIX):].split("/", 1)[0]
               for i in storage.list(SNAPSHOTS_PREFIX)}
    assert folders == {sid for _, sid in wins}
    reports = {i.key.split("/")[1] for i in storage.list("reports/")}
    assert {r for r in reports if r[:8].isdigit()} <= folders
    record_property("publish_races_run", 1)
    record_property("publish_racers", PUBLISHERS)
    record_property("publish_attempts", len(wins) + len(losses))
