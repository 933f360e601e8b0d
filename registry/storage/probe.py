"""The capabilities probe: does a store really enforce create-if-absent and compare-and-swap?

Some stores accept the conditional headers without honouring them (a versioned Ceph RGW
bucket); publication probes the store before it writes anything (docs/architecture.md §2.3).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from registry.storage.base import (
    AlreadyExists,
    PreconditionFailed,
    Storage,
    StorageError,
    checked_prefix,
    md5_etag,
)

PROBE_PREFIX = "_probe/"
CREATE_IF_ABSENT = "create-if-absent"
COMPARE_AND_SWAP = "compare-and-swap"


class StoreLacksGuarantees(StorageError):
    """The store does not enforce a guarantee that publishing relies on; nothing was published.

    ``missing`` names the guarantees (:data:`CREATE_IF_ABSENT`, :data:`COMPARE_AND_SWAP`).
    """

    def __init__(self, root_uri: str, missing: tuple[str, ...]):
        # Both values go to Exception.args so the error survives pickling (Prefect results).
        super().__init__(root_uri, tuple(missing))
        self.root_uri = root_uri
        self.missing = tuple(missing)

    def __str__(self) -> str:
        hint = ""
        if CREATE_IF_ABSENT in self.missing:
            hint = (
                " A versioned bucket is the usual cause (Ceph RGW ignores If-None-Match there):"
                " use an unversioned bucket for the registry."
            )
        return (
            f"{self.root_uri} does not enforce {' and '.join(self.missing)}; refusing to "
            f"publish, since concurrent or retried writers could overwrite a committed "
            f"snapshot or the latest pointer.{hint}"
        )


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What :func:`probe_capabilities` saw a store enforce."""

    root_uri: str
    create_if_absent: bool
    compare_and_swap: bool

    @property
    def missing(self) -> tuple[str, ...]:
        held = {CREATE_IF_ABSENT: self.create_if_absent, COMPARE_AND_SWAP: self.compare_and_swap}
        return tuple(name for name, ok in held.items() if not ok)

    def require(self) -> Capabilities:
        """Return ``self`` if every guarantee holds, else raise :class:`StoreLacksGuarantees`."""
        if self.missing:
            raise StoreLacksGuarantees(self.root_uri, self.missing)
        return self


def probe_capabilities(storage: Storage, scratch_prefix: str = PROBE_PREFIX) -> Capabilities:
    """Check, by trying them, that ``storage`` enforces create-if-absent and compare-and-swap.

    Publication relies on both (docs/architecture.md §11), and some stores accept the
    conditional headers yet do not honour them: on a versioned Ceph RGW bucket every
    ``If-None-Match: *`` write wins and every ``If-Match`` fails, even with the current etag.
    The publisher therefore calls ``probe_capabilities(storage).require()`` before it writes
    anything, and refuses to publish with :class:`StoreLacksGuarantees`.

    Under ``{scratch_prefix}{random id}/`` the probe

    - creates an object with :meth:`Storage.put_if_absent`, then tries again on the same key:
      create-if-absent holds if the second try raises :class:`AlreadyExists` and the first
      bytes survive;
    - replaces the object with its current etag (must succeed), then with that now stale etag,
      and replaces a missing key (both must raise :class:`PreconditionFailed` and write
      nothing): compare-and-swap holds if all three behave.

    It deletes its scratch objects before returning, also when it raises. (On a versioned
    bucket their noncurrent versions remain, as after any delete there.)

    The probe sees whether a store enforces the conditions, not whether it does so atomically
    under concurrency: moto passes it but checks without a lock. The race tests against Ceph
    RGW cover atomicity.

    Returns the :class:`Capabilities` seen. Raises :class:`StorageError` (for example
    :class:`StorageUnavailable`, or a permission error) when the store cannot be probed at all;
    that is no verdict on its guarantees.
    """
    base = f"{checked_prefix(scratch_prefix)}{uuid.uuid4().hex}/"
    cell, absent = f"{base}cell", f"{base}absent"
    try:
        storage.put_if_absent(cell, b"first")
        try:
            storage.put_if_absent(cell, b"second")
            create_if_absent = False
        except AlreadyExists:
            create_if_absent = storage.read_bytes(cell) == b"first"

        current = storage.head(cell).etag
        try:
            storage.replace_if_match(cell, b"third", current)
            fresh_etag_accepted = True
        except PreconditionFailed:
            fresh_etag_accepted = False
        try:
            storage.replace_if_match(cell, b"fourth", current)
            stale_etag_refused = False
        except PreconditionFailed:
            stale_etag_refused = storage.read_bytes(cell) != b"fourth"
        try:
            storage.replace_if_match(absent, b"fifth", md5_etag(b"never written"))
            missing_refused = False
        except PreconditionFailed:
            missing_refused = not storage.exists(absent)
    finally:
        storage.delete(cell)
        storage.delete(absent)
    return Capabilities(
        root_uri=storage.root_uri,
        create_if_absent=create_if_absent,
        compare_and_swap=fresh_etag_accepted and stale_etag_refused and missing_refused,
    )

