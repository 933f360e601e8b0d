"""The schedule with nothing to do.

The data engineer runs `registry run` every ten minutes. The councils' morning uploads are
published by the first run. The runs after it find nothing new: a consumer app keeps reading
the same snapshot, no snapshot is written, and no publication is started at all (no publish
flow run, so none waits for the single-writer slot a long publication may hold). A correction
Jiangsu's clerk sends later is published by the next run.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from staged_rows import AS_OF, merchant, stage_batch, stage_three_regions, uscc

from registry.cli.common import command_flow_runs
from registry.snapshot.reader import open_snapshot, read_latest, read_log
from registry.storage import LocalStorage

__all__: list[str] = []


def _publish_runs() -> int:
    with get_client(sync_client=True) as client:
        return len(client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["publish"]))))


def test_runs_with_nothing_new_start_no_publication(prefect_home, tmp_path, monkeypatch):
    storage = LocalStorage(tmp_path / "registry")
    monkeypatch.setenv("REGISTRY_STORAGE_URI", storage.root_uri)
    stage_three_regions(storage)
    js = uscc("32", 1)

    with command_flow_runs():
        from flows.pipeline import pipeline_flow

        morning = pipeline_flow(as_of=AS_OF)["publish"]
        idle = [pipeline_flow(as_of=AS_OF)["publish"] for _ in range(2)]
        idle_publish_runs = _publish_runs()

        stage_batch(storage, "merchants", "JS", "20261130T020000Z-js2",
                    [merchant(filing_id="JS-1", uscc=js, status="revoked", city="南京")])
        corrected = pipeline_flow(as_of=AS_OF)["publish"]
        publish_runs = _publish_runs()

    assert morning.published
    assert [r.published for r in idle] == [False, False]
    assert {r.snapshot_id for r in idle} == {morning.snapshot_id}
    assert all(r.rows == morning.rows and r.report == morning.report for r in idle)
    # The consumer app's view did not move, and nothing was written for the idle runs.
    assert idle_publish_runs == 1
    assert corrected.published and publish_runs == 2
    assert [e.snapshot_id for e in read_log(storage)] == [morning.snapshot_id,
                                                          corrected.snapshot_id]
    assert read_latest(storage)[0].snapshot_id == corrected.snapshot_id
    assert open_snapshot(storage, corrected.snapshot_id).merchant(js) is None
