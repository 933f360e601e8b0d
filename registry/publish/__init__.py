"""Publication: build the registry from the batches in effect and publish it as an immutable,
verifiable snapshot; roll back; collect garbage.

- :mod:`~registry.publish.inputs`: the staged rows in effect, read for the build;
- :mod:`~registry.publish.tables`: the published tables, their Parquet bytes and summary;
- :mod:`~registry.publish.pii`: the personal-data guard on the published tables;
- :mod:`~registry.publish.protocol`: the publication protocol and its commit point;
- :mod:`~registry.publish.rollback`: pointing latest back at an earlier snapshot;
- :mod:`~registry.publish.gc`: orphaned and expired snapshots, uncommitted batches.
"""

from registry.publish.gc import GcReport, collect_garbage, remove_uncommitted_batches
from registry.publish.pii import PIIFinding, pii_findings
from registry.publish.protocol import (
    ConcurrentPublish,
    PIIRefused,
    PublishRefused,
    PublishResult,
    RegistrySuiteFailed,
    publish_snapshot,
    recover_latest,
    unchanged_publication,
)
from registry.publish.rollback import rollback_snapshot
from registry.publish.tables import snapshot_tables

__all__ = [
    "ConcurrentPublish",
    "GcReport",
    "PIIFinding",
    "PIIRefused",
    "PublishRefused",
    "PublishResult",
    "RegistrySuiteFailed",
    "collect_garbage",
    "pii_findings",
    "publish_snapshot",
    "recover_latest",
    "remove_uncommitted_batches",
    "rollback_snapshot",
    "snapshot_tables",
    "unchanged_publication",
]
