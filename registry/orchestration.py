"""The registry's side of Prefect orchestration (docs/architecture.md §14): the upload event
that triggers the ``ingest`` deployment, and the work pool and concurrency limits the
deployments rely on.

Names here are shared with ``prefect.yaml`` and ``flows/``; change them together.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from registry.storage.layout import landing_prefix

log = logging.getLogger(__name__)

UPLOAD_EVENT = "registry.upload.created"
WORK_POOL = "registry-pool"
# Held by the publish flow: one writer at a time (the create-if-absent log is the second guard).
PUBLISH_LIMIT = "registry-publish"
# An upload event is dropped rather than held up longer than this: the schedule catches up.
EVENT_TIMEOUT_S = 10.0


def region_tag(region: str) -> str:
    """The tag on every ingest task of ``region``; a tag concurrency limit caps it."""
    return f"region:{region}"


def upload_resource_id(region: str, dataset: str) -> str:
    """The Prefect resource an upload event is about: one council's landing area of a dataset."""
    return f"registry.landing.{region}.{dataset}"


def upload_event_payload(key: str, region: str, dataset: str, size: int) -> dict[str, object]:
    """What the upload event carries: where the object is and how big, never its content."""
    return {"key": key, "region": region, "dataset": dataset, "size": size}


async def _send(event: object) -> None:
    from prefect.events.clients import get_events_client

    # Few reconnection attempts: with no server listening the answer comes in well under a
    # second instead of after Prefect's default ten.
    async with get_events_client(reconnection_attempts=2) as client:
        await client.emit(event)


def emit_upload_created(key: str, region: str, dataset: str, size: int) -> bool:
    """Tell the Prefect server (``PREFECT_API_URL``) that ``key`` landed, so that the ingest
    deployment's trigger can start a run. Returns whether the event was sent.

    Never raises: the upload itself has succeeded and the ingest schedule picks it up anyway,
    so a missing server or a failed send is logged, not fatal. Without ``PREFECT_API_URL``
    nothing is sent (an ephemeral API has no deployments to trigger).

    The event goes through an events client opened here rather than ``emit_event``, whose
    background worker would hide the outcome from the caller and, with the server down, hold
    the command up for several seconds at exit.
    """
    from prefect.events import Event
    from prefect.settings import get_current_settings

    api_url = get_current_settings().api.url
    if not api_url:
        log.info("PREFECT_API_URL is not set: no %s event sent for %s", UPLOAD_EVENT, key)
        return False
    event = Event(
        event=UPLOAD_EVENT,
        resource={
            "prefect.resource.id": upload_resource_id(region, dataset),
            "prefect.resource.name": landing_prefix(region, dataset).rstrip("/"),
            "registry.region": region,
            "registry.dataset": dataset,
        },
        payload=upload_event_payload(key, region, dataset, size),
    )
    try:
        asyncio.run(asyncio.wait_for(_send(event), EVENT_TIMEOUT_S))
    except Exception as err:  # the upload stands whatever happened to the event
        log.warning(
            "upload stored as %s, but the %s event could not be sent to %s (%s: %s); the "
            "ingest schedule will pick the upload up", key, UPLOAD_EVENT, api_url,
            type(err).__name__, err,
        )
        return False
    log.info("sent %s for %s (event %s)", UPLOAD_EVENT, key, event.id)
    return True


@dataclass(frozen=True)
class OrchestrationSetup:
    """What :func:`set_up_orchestration` found or made on the Prefect server."""

    work_pool_created: bool
    publish_limit: int
    region_limits: dict[str, int]

    def lines(self) -> list[str]:
        return [
            f"work pool {WORK_POOL}: " + ("created" if self.work_pool_created else "exists"),
            f"global concurrency limit {PUBLISH_LIMIT}: {self.publish_limit}",
            *(f"tag concurrency limit {region_tag(r)}: {n}"
              for r, n in sorted(self.region_limits.items())),
        ]


def set_up_orchestration(regions: Iterable[str], per_region: int) -> OrchestrationSetup:
    """Make the Prefect server at ``PREFECT_API_URL`` ready for ``prefect deploy --all``:

    - the process work pool ``registry-pool``, created if absent;
    - the global concurrency limit ``registry-publish`` of 1 (single-writer publication);
    - a tag concurrency limit of ``per_region`` ingest tasks for each region's ``region:{R}``.

    Idempotent: limits that exist are set to these values. Raises ``ValueError`` for
    ``per_region < 1`` and Prefect's errors when the server cannot be reached.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
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
    return OrchestrationSetup(created, 1, limits)
