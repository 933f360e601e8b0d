"""``REGISTRY_CRASH_AT``: a test hook that kills the process with SIGKILL at a named step of a
protocol, so that reliability tests can prove every step is safe to die after.

This module owns the steps' names, which are public and stable: :data:`INGEST_CRASH_STEPS` for
ingestion and :data:`PUBLISH_CRASH_STEPS` for publication. Unset (the default), nothing happens.
"""

from __future__ import annotations

import logging
import os
import signal

from registry.config.settings import Settings

log = logging.getLogger(__name__)

# The named steps of one upload's processing where REGISTRY_CRASH_AT kills the ingest worker,
# in order. Reliability tests kill at every one of them and prove that a rerun completes the
# work exactly once; keep the names stable.
INGEST_CRASH_STEPS = (
    "after_archive",  # raw bytes and their .meta.json written
    "after_claim",  # claim created (state: claimed)
    # The batch gate runs beside the staged-schema check and the Parquet writes, so it may
    # still be running at the next two steps.
    "after_staged_file",
    "after_quarantine_file",
    "after_batch_gate",  # the batch's Data Docs stored under reports/batches/
    "after_batch_record",  # the batch is committed
    "after_receipt",
    "after_ledger_done",  # claim done; this version not yet marked seen
)

# The named steps of publication where REGISTRY_CRASH_AT kills the publisher, in order.
# Reliability tests kill at every one of them; keep the names stable.
PUBLISH_CRASH_STEPS = (
    "after_first_data_file",
    "after_data_files",
    "after_manifest",
    "after_log_entry",
    "after_latest",
)

# The steps of the current state's commit (registry.publish.state), before the snapshot is
# built: its partition files written, then its pointer moved.
STATE_CRASH_STEPS = (
    "after_state_files",
    "after_state_pointer",
)


def check_crash_setting(settings: Settings) -> None:
    """Raise ValueError when ``settings.crash_at`` is set but names no step of either protocol
    (``registry run`` ingests and publishes in one process, under one setting)."""
    if settings.crash_at is None:
        return
    known = (*INGEST_CRASH_STEPS, *STATE_CRASH_STEPS, *PUBLISH_CRASH_STEPS)
    if settings.crash_at not in known:
        raise ValueError(f"REGISTRY_CRASH_AT={settings.crash_at!r} is not a step; one of {known}")


def crash_point(settings: Settings, step: str, who: str) -> None:
    """SIGKILL this process when ``settings.crash_at`` is ``step`` (no cleanup runs at all)."""
    if settings.crash_at == step:
        log.warning("REGISTRY_CRASH_AT=%s: killing the %s", step, who)
        os.kill(os.getpid(), signal.SIGKILL)
