"""The index of the snapshots' reports: ``reports/index.html``, every committed snapshot whose
report is stored, newest first, rendered from the list ``reports/index.json``.

Each report written adds its snapshot to the list, and each report gc removes takes its
snapshot off, by compare-and-swap on the list: so writing a report reads the list and nothing
else, however many snapshots the commit log holds. Before, each report rebuilt the index from
the whole log, a read of every log entry and two HEADs per snapshot ever published, growing
with every publication. A store without the list (written before it existed, or the list
lost) gets it rebuilt from the log once, by the next report written (:func:`rebuilt_listing`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from registry.report.data import relative_link
from registry.report.page import reports_index_html
from registry.snapshot.reader import LogEntry, read_log
from registry.storage import AlreadyExists, NotFound, PreconditionFailed, Storage
from registry.storage.layout import report_key, reports_index_key, reports_list_key

LIST_FORMAT = "yrd-registry-reports/1"
# Compare-and-swap attempts before giving up on the list (another writer kept changing it).
_ATTEMPTS = 10


class ListedReport(BaseModel):
    """One snapshot's report in the list: the snapshot as its log entry commits it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    snapshot_id: str
    seq: int
    as_of: date
    committed_at: datetime

    @classmethod
    def of(cls, entry: LogEntry) -> ListedReport:
        return cls(snapshot_id=entry.snapshot_id, seq=entry.seq, as_of=entry.as_of,
                   committed_at=entry.committed_at)


class ReportsList(BaseModel):
    """``reports/index.json``: the reports the index lists, newest (highest log seq) first."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["yrd-registry-reports/1"] = LIST_FORMAT
    reports: list[ListedReport]

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(indent=2).encode("utf-8")


class ReportsIndexContended(Exception):
    """Other writers changed the reports list on every attempt to update it."""


def rebuilt_listing(storage: Storage) -> list[ListedReport]:
    """Every committed snapshot whose report is stored, from the commit log (a read of each
    entry and a HEAD of each report): for a store without the list."""
    return [ListedReport.of(e) for e in read_log(storage)
            if e.action == "publish" and storage.exists(report_key(e.snapshot_id))]


def update_reports_index(storage: Storage, *, add: Iterable[LogEntry] = (),
                         remove: Collection[str] = ()) -> str:
    """List the reports of the snapshots ``add`` commits (again, if listed) and take the
    snapshots ``remove`` names off, by compare-and-swap on ``reports/index.json``, then
    render ``reports/index.html`` from the list. Returns the page's key.

    The page is rendered again until the list it was rendered from is still the stored one
    after it is written: of two writers, the last to write the page renders the other's
    change too. Raises :class:`ReportsIndexContended` when the list kept changing."""
    adding = [ListedReport.of(entry) for entry in add]
    for _ in range(_ATTEMPTS):
        found = _read_list(storage)
        listing = rebuilt_listing(storage) if found is None else found[0].reports
        changed = {r.snapshot_id for r in adding} | set(remove)
        kept = [r for r in listing if r.snapshot_id not in changed]
        updated = ReportsList(reports=sorted([*kept, *adding], key=lambda r: r.seq,
                                             reverse=True))
        data = updated.to_json_bytes()
        try:
            if found is None:
                etag = storage.put_if_absent(reports_list_key(), data)
            elif updated == found[0]:
                etag = found[1]
            else:
                etag = storage.replace_if_match(reports_list_key(), data, found[1])
        except (AlreadyExists, PreconditionFailed):
            continue  # another writer changed the list meanwhile: apply ours to theirs
        return _rendered_index(storage, updated, etag)
    raise ReportsIndexContended(
        f"{reports_list_key()} changed on each of {_ATTEMPTS} attempts to update it")


def _read_list(storage: Storage) -> tuple[ReportsList, str] | None:
    """The stored list and its etag, or None when there is none."""
    try:
        # The etag first, then the content: a list replaced in between is newer than the etag,
        # so the compare-and-swap made from it fails and is tried again, losing nothing.
        info = storage.head(reports_list_key())
        return ReportsList.model_validate_json(storage.read_bytes(reports_list_key())), info.etag
    except NotFound:
        return None


def _rendered_index(storage: Storage, listing: ReportsList, etag: str) -> str:
    key = reports_index_key()
    for _ in range(_ATTEMPTS):
        storage.write_bytes(key, reports_index_html([
            {"snapshot_id": r.snapshot_id, "as_of": r.as_of.isoformat(),
             "committed_at": f"{r.committed_at:%Y-%m-%d %H:%M:%S %Z}",
             "link": relative_link(key, report_key(r.snapshot_id))}
            for r in listing.reports]).encode("utf-8"))
        try:
            if storage.head(reports_list_key()).etag == etag:
                return key
        except NotFound:
            return key  # removed meanwhile: the next report written rebuilds it
        found = _read_list(storage)  # a newer list was stored meanwhile: render that one
        if found is None:
            return key
        listing, etag = found
    raise ReportsIndexContended(f"{reports_list_key()} kept changing while {key} was written")


__all__ = [
    "LIST_FORMAT",
    "ListedReport",
    "ReportsIndexContended",
    "ReportsList",
    "rebuilt_listing",
    "update_reports_index",
]
