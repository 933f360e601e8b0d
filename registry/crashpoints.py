"""``REGISTRY_CRASH_AT``: a test hook that kills the process with SIGKILL at a named step of a
protocol, so that reliability tests can prove every step is safe to die after.

The steps are public and stable: :data:`registry.publish.CRASH_STEPS` for publication and
:data:`registry.ingest.CRASH_STEPS` for ingestion. Unset (the default), nothing happens.
"""

from __future__ import annotations

import logging
import os
import signal

from registry.settings import Settings

log = logging.getLogger(__name__)


def check_crash_setting(settings: Settings) -> None:
    """Raise ValueError when ``settings.crash_at`` is set but names no step of either protocol
    (``registry run`` ingests and publishes in one process, under one setting)."""
    if settings.crash_at is None:
        return
    # Imported here: both modules use this one, and it is only reached in crash tests.
    from registry.ingest import CRASH_STEPS as INGEST_STEPS
    from registry.publish import CRASH_STEPS as PUBLISH_STEPS

    known = (*INGEST_STEPS, *PUBLISH_STEPS)
    if settings.crash_at not in known:
        raise ValueError(f"REGISTRY_CRASH_AT={settings.crash_at!r} is not a step; one of {known}")


def crash_point(settings: Settings, step: str, who: str) -> None:
    """SIGKILL this process when ``settings.crash_at`` is ``step`` (no cleanup runs at all)."""
    if settings.crash_at == step:
        log.warning("REGISTRY_CRASH_AT=%s: killing the %s", step, who)
        os.kill(os.getpid(), signal.SIGKILL)
