"""The registry's side of Prefect orchestration (docs/architecture.md §14, docs/deploying.md):
the events the registry sends, the payloads they carry, and the work pool, concurrency limits,
notification block and automations the deployments rely on.

Events and what listens to them:

- ``registry.upload.created`` (``registry upload``): the ``ingest`` deployment's trigger.
- ``registry.batches.staged`` (an ingest run that staged publishable batches, or ``registry
  batches release``): the ``publish`` deployment's trigger, so that a revocation reaches the
  published registry within minutes instead of at the daily 02:00 run.
- ``registry.batch.held``, ``registry.upload.rejected``, ``registry.snapshot.published``: the
  notification automations of ``automations.yaml``, which call the webhook block.

Every event carries region, dataset, ids and counts. None carries a file's name (a council's
file name can hold a person's name), a row or a merchant: receipts and the report are where
those are shown, to those allowed to see them.

Names here are shared with ``prefect.yaml``, ``automations.yaml`` and ``flows/``; change them
together.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import yaml

from registry.config.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

UPLOAD_EVENT = "registry.upload.created"
BATCHES_STAGED_EVENT = "registry.batches.staged"
BATCH_HELD_EVENT = "registry.batch.held"
UPLOAD_REJECTED_EVENT = "registry.upload.rejected"
SNAPSHOT_PUBLISHED_EVENT = "registry.snapshot.published"
WORK_POOL = "registry-pool"
# Held by the publish flow: one writer at a time (the create-if-absent log is the second guard).
PUBLISH_LIMIT = "registry-publish"
# The Webhook block the notification automations call, and where those automations are written.
NOTIFY_BLOCK = "registry-notify"
AUTOMATIONS_FILE = PROJECT_ROOT / "automations.yaml"
# An event is dropped rather than held up longer than this: the schedules catch up.
EVENT_TIMEOUT_S = 10.0


def region_tag(region: str) -> str:
    """The tag on every ingest task of ``region``; a tag concurrency limit caps it."""
    return f"region:{region}"


def upload_resource_id(region: str, dataset: str) -> str:
    """The Prefect resource an upload event is about: one council's landing area of a dataset."""
    return f"registry.landing.{region}.{dataset}"


def batches_resource_id(region: str, dataset: str) -> str:
    """The Prefect resource of one council's batches of a dataset (staged, held, released)."""
    return f"registry.batches.{region}.{dataset}"


def snapshot_resource_id(snapshot_id: str) -> str:
    """The Prefect resource of one published snapshot."""
    return f"registry.snapshot.{snapshot_id}"


def upload_event_payload(region: str, dataset: str, size: int) -> dict[str, object]:
    """What the upload event carries: whose landing area and how big, never the file's name
    (it can hold a person's name) nor its content."""
    return {"region": region, "dataset": dataset, "size": size}


@dataclass(frozen=True)
class RegistryEvent:
    """One event for the Prefect server: its name, the resource it is about, and a payload of
    ids and counts."""

    event: str
    resource_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    region: str | None = None
    dataset: str | None = None


class UploadOutcome(Protocol):
    """What :func:`ingest_events` reads of an upload's outcome
    (:class:`registry.ingest.pipeline.UploadResult`)."""

    region: str | None
    dataset: str | None
    status: str
    upload_id: str | None
    batch_id: str | None
    rows_in: int
    accepted: int
    quarantined: int
    file_error: str | None
    held: bool


class PublishedSnapshot(Protocol):
    """What :func:`snapshot_published_event` reads of a publication
    (:class:`registry.publish.PublishResult`)."""

    snapshot_id: str
    seq: int
    as_of: date
    previous_snapshot: str | None
    rows: dict[str, int]
    trusted_by_grade: dict[str, int]
    changes: dict[str, int]


def ingest_events(outcomes: Iterable[UploadOutcome],
                  held_reasons: Mapping[str, Sequence[str]] | None = None, *,
                  staged: bool = True) -> list[RegistryEvent]:
    """The events of one ingest run, one per region and dataset and kind:

    - ``registry.batches.staged`` for staged batches that count in the next publication
      (``batch_ids``, ``batches``, ``accepted_rows``, ``quarantined_rows``); left out with
      ``staged=False`` (a run that publishes itself next);
    - ``registry.batch.held`` for batches the batch gate held (``held``: each batch's id,
      accepted rows and the gate's reason codes from ``held_reasons`` by batch id);
    - ``registry.upload.rejected`` for files rejected whole (``rejected``: each upload's id and
      the file-level code, so that the council finds its receipt).

    Duplicates, uploads in progress elsewhere and skipped ones make no event. Pure."""
    held_reasons = held_reasons or {}
    groups: dict[tuple[str, str, str], list[UploadOutcome]] = defaultdict(list)
    for o in outcomes:
        if o.region is None or o.dataset is None:
            continue
        if o.status == "staged" and o.batch_id:
            kind = BATCH_HELD_EVENT if o.held else BATCHES_STAGED_EVENT
        elif o.status == "rejected":
            kind = UPLOAD_REJECTED_EVENT
        else:
            continue
        if kind == BATCHES_STAGED_EVENT and not staged:
            continue
        groups[(kind, o.region, o.dataset)].append(o)
    events = []
    for (kind, region, dataset), group in sorted(groups.items()):
        group = sorted(group, key=lambda o: o.batch_id or o.upload_id or "")
        base: dict[str, Any] = {"region": region, "dataset": dataset}
        if kind == BATCHES_STAGED_EVENT:
            payload = {**base, "batches": len(group),
                       "batch_ids": [o.batch_id for o in group],
                       "accepted_rows": sum(o.accepted for o in group),
                       "quarantined_rows": sum(o.quarantined for o in group)}
            resource = batches_resource_id(region, dataset)
        elif kind == BATCH_HELD_EVENT:
            payload = {**base, "batches": len(group), "held": [
                {"batch_id": o.batch_id, "accepted_rows": o.accepted,
                 "quarantined_rows": o.quarantined,
                 "reasons": list(held_reasons.get(o.batch_id or "", ()))}
                for o in group]}
            resource = batches_resource_id(region, dataset)
        else:
            payload = {**base, "files": len(group), "rejected": [
                {"upload_id": o.upload_id, "code": o.file_error} for o in group]}
            resource = upload_resource_id(region, dataset)
        events.append(RegistryEvent(kind, resource, payload, region, dataset))
    return events


def batch_released_event(release: Mapping[str, Any]) -> RegistryEvent:
    """``registry.batches.staged`` for a held batch just released (``release`` as
    :func:`registry.quality.release_batch` returns it): it counts in the next publication.
    Who released it and why stay in the ledger: a name is personal data."""
    region, dataset = release["region"], release["dataset"]
    return RegistryEvent(
        BATCHES_STAGED_EVENT, batches_resource_id(region, dataset),
        {"region": region, "dataset": dataset, "batches": 1,
         "batch_ids": [release["batch_id"]], "released": True},
        region, dataset,
    )


def snapshot_published_event(result: PublishedSnapshot) -> RegistryEvent:
    """``registry.snapshot.published``: the snapshot's id and log sequence, its as_of, and its
    counts (rows per table, trusted merchants per grade, changes by kind). The snapshot holds
    every region, so the event names none. Pure."""
    return RegistryEvent(
        SNAPSHOT_PUBLISHED_EVENT, snapshot_resource_id(result.snapshot_id),
        {"snapshot_id": result.snapshot_id, "seq": result.seq,
         "as_of": result.as_of.isoformat(), "previous_snapshot": result.previous_snapshot,
         "rows": dict(result.rows), "trusted_by_grade": dict(result.trusted_by_grade),
         "changes": dict(result.changes)},
    )


def _prefect_event(event: RegistryEvent, related: list[dict[str, str]]) -> Any:
    from prefect.events import Event

    resource = {"prefect.resource.id": event.resource_id}
    if event.region:
        resource["registry.region"] = event.region
    if event.dataset:
        resource["registry.dataset"] = event.dataset
    return Event(event=event.event, resource=resource, payload=event.payload, related=related)


def _run_related() -> list[dict[str, str]]:
    """The flow run sending the event, when there is one, so the Prefect UI links the two."""
    from prefect.context import FlowRunContext, TaskRunContext

    flow_run = FlowRunContext.get()
    task_run = TaskRunContext.get()
    run_id = (flow_run.flow_run.id if flow_run and flow_run.flow_run
              else task_run.task_run.flow_run_id if task_run else None)
    if run_id is None:
        return []
    return [{"prefect.resource.id": f"prefect.flow-run.{run_id}",
             "prefect.resource.role": "flow-run"}]


async def _send(events: Sequence[Any]) -> None:
    from prefect.events.clients import get_events_client

    # Few reconnection attempts: with no server listening the answer comes in well under a
    # second instead of after Prefect's default ten.
    async with get_events_client(reconnection_attempts=2) as client:
        for event in events:
            await client.emit(event)


def emit_events(events: Sequence[RegistryEvent]) -> bool:
    """Send ``events`` to the Prefect server (``PREFECT_API_URL``); returns whether they were
    sent.

    Never raises: what the events announce has happened, and the schedules catch up with it,
    so a missing server or a failed send is logged, not fatal. Without ``PREFECT_API_URL``
    nothing is sent (an ephemeral API has no deployments to trigger nor automations to run).

    The events go through an events client opened here rather than ``emit_event``, whose
    background worker would hide the outcome from the caller and, with the server down, hold
    the command up for several seconds at exit.
    """
    if not events:
        return True
    names = ", ".join(sorted({e.event for e in events}))
    api_url = None
    try:
        from prefect.settings import get_current_settings

        api_url = get_current_settings().api.url
        if not api_url:
            log.info("PREFECT_API_URL is not set: %s not sent", names)
            return False
        related = _run_related()
        prefect_events = [_prefect_event(e, related) for e in events]
        asyncio.run(asyncio.wait_for(_send(prefect_events), EVENT_TIMEOUT_S))
    except Exception as err:  # what the events announce stands whatever happened to them
        log.warning("%s could not be sent to %s (%s: %s); the schedules will catch up",
                    names, api_url or "the Prefect server", type(err).__name__, err)
        return False
    log.info("sent %d event(s): %s", len(events), names)
    return True


def emit_upload_created(key: str, region: str, dataset: str, size: int) -> bool:
    """Tell the Prefect server (``PREFECT_API_URL``) that an upload landed at ``key``, so that
    the ingest deployment's trigger can start a run. Returns whether the event was sent; never
    raises (:func:`emit_events`)."""
    event = RegistryEvent(
        UPLOAD_EVENT, upload_resource_id(region, dataset),
        upload_event_payload(region, dataset, size), region, dataset,
    )
    sent = emit_events([event])
    if not sent:
        log.warning("upload stored as %s; the ingest schedule will pick it up", key)
    return sent


def announce_ingest(outcomes: Iterable[UploadOutcome],
                    held_reasons: Mapping[str, Sequence[str]] | None = None, *,
                    staged: bool = True) -> list[RegistryEvent]:
    """Send the events of one ingest run (:func:`ingest_events`) and return them. Never raises:
    an ingest that worked is not failed by its announcement."""
    try:
        events = ingest_events(outcomes, held_reasons, staged=staged)
    except Exception:
        log.exception("the ingest run's events could not be built; none sent")
        return []
    emit_events(events)
    return events


def announce_snapshot(result: PublishedSnapshot) -> RegistryEvent | None:
    """Send ``registry.snapshot.published`` for ``result`` and return it. Never raises."""
    try:
        event = snapshot_published_event(result)
    except Exception:
        log.exception("the publication's event could not be built; none sent")
        return None
    emit_events([event])
    return event


# ---------------------------------------------------------------------------------------------
# Setting up the server


@dataclass(frozen=True)
class OrchestrationSetup:
    """What :func:`set_up_orchestration` found or made on the Prefect server."""

    work_pool_created: bool
    publish_limit: int
    region_limits: dict[str, int]
    # Notification automations created or updated; None when there is no webhook to call.
    automations: list[str] | None = None

    def lines(self) -> list[str]:
        return [
            f"work pool {WORK_POOL}: " + ("created" if self.work_pool_created else "exists"),
            f"global concurrency limit {PUBLISH_LIMIT}: {self.publish_limit}",
            *(f"tag concurrency limit {region_tag(r)}: {n}"
              for r, n in sorted(self.region_limits.items())),
            *(f"notification automation {name} -> webhook block {NOTIFY_BLOCK}"
              for name in self.automations or ()),
            *(() if self.automations is not None else (
                f"notifications: off (no webhook block {NOTIFY_BLOCK}; set "
                "REGISTRY_NOTIFY_WEBHOOK_URL and run setup again)",)),
        ]


def notification_automations(block_document_id: str, path: Path = AUTOMATIONS_FILE
                             ) -> list[dict[str, Any]]:
    """The automations of ``path`` (``automations.yaml``), each ``call-webhook`` action
    pointed at the block ``block_document_id``: the file names the block, the server knows
    its id. Raises ``ValueError`` for a file without automations."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    automations = doc.get("automations") or []
    if not automations:
        raise ValueError(f"{path} lists no automations")
    for automation in automations:
        for action in automation.get("actions", []):
            if action.get("type") == "call-webhook":
                action["block_document_id"] = block_document_id
    return automations


def _notify_block_id(client: Any, webhook_url: str | None) -> str | None:
    """The id of the Webhook block ``registry-notify``: saved with ``webhook_url`` when given,
    else the one already on the server (an operator may have made it with headers of their
    own), else None."""
    from prefect.blocks.webhook import Webhook
    from prefect.exceptions import ObjectNotFound

    if webhook_url:
        return str(Webhook(url=webhook_url, headers={"Content-Type": "application/json"})
                   .save(NOTIFY_BLOCK, overwrite=True))
    try:
        return str(client.read_block_document_by_name(NOTIFY_BLOCK, "webhook").id)
    except ObjectNotFound:
        return None


def set_up_orchestration(regions: Iterable[str], per_region: int,
                         webhook_url: str | None = None) -> OrchestrationSetup:
    """Make the Prefect server at ``PREFECT_API_URL`` ready for ``prefect deploy --all``:

    - the process work pool ``registry-pool``, created if absent;
    - the global concurrency limit ``registry-publish`` of 1 (single-writer publication);
    - a tag concurrency limit of ``per_region`` ingest tasks for each region's ``region:{R}``;
    - the Webhook block ``registry-notify`` calling ``webhook_url`` (when given), and the
      notification automations of ``automations.yaml`` calling it (when the block exists).

    Idempotent: limits and automations that exist are set to these values. Raises
    ``ValueError`` for ``per_region < 1`` and Prefect's errors when the server cannot be
    reached.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.events.schemas.automations import AutomationCore
    from prefect.exceptions import ObjectAlreadyExists

    if per_region < 1:
        raise ValueError("per_region must be at least 1")
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=WORK_POOL, type="process"))
            created = True
        except ObjectAlreadyExists:
            created = False
        client.upsert_global_concurrency_limit_by_name(PUBLISH_LIMIT, 1)
        limits = {}
        for region in regions:
            client.create_concurrency_limit(tag=region_tag(region), concurrency_limit=per_region)
            limits[region] = per_region
        block_id = _notify_block_id(client, webhook_url)
        automations = None
        if block_id is not None:
            automations = []
            for spec in notification_automations(block_id):
                automation = AutomationCore.model_validate(spec)
                existing = client.read_automations_by_name(automation.name)
                if existing:
                    client.update_automation(existing[0].id, automation)
                else:
                    client.create_automation(automation)
                automations.append(automation.name)
    return OrchestrationSetup(created, 1, limits, automations)
