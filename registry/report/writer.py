"""The report's I/O edge: :func:`report_data` reads a snapshot and the batch ledger,
:func:`write_report` writes the page and the data dictionary under the snapshot's report
folder, and lists the report in the index of every snapshot's report
(``reports/index.html``, :mod:`registry.report.index`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime

import polars as pl

from registry import ledger
from registry.config.contracts import load_contracts
from registry.config.published import (
    PublishedContract,
    load_published_contracts,
    parse_published_contract,
)
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.progress import ProgressCallback
from registry.report.data import (
    complaint_category_labels,
    complaint_charts,
    complaints_headline,
    file_name_words,
    gift_rankings,
    headline_numbers,
    region_scorecards,
    relative_link,
    score_chart_spec,
    score_distribution,
    top_changes,
    trusted_by_region_and_grade,
    trusted_chart_spec,
    value_label,
)
from registry.report.dictionary import data_dictionary_html
from registry.report.index import update_reports_index
from registry.report.page import (
    ReportData,
    report_html,
    vega_runtime,
    vega_runtime_version,
)
from registry.snapshot.formats import LogEntry, Manifest
from registry.snapshot.reader import Snapshot, SnapshotError, open_snapshot, read_log
from registry.storage import AlreadyExists, NotFound, Storage
from registry.storage.layout import (
    PAGE_FILE,
    chart_runtime_key,
    dictionary_key,
    manifest_key,
    report_key,
    report_prefix,
    snapshot_prefix,
)

log = logging.getLogger(__name__)


class _Opened:
    """The snapshots a report reads, each opened once: those its caller already opened and
    verified (a publication's new snapshot and the previous one it was built against), else
    opened here, verified or not as asked."""

    def __init__(self, storage: Storage, verified: Iterable[Snapshot]) -> None:
        self._storage = storage
        self._verified = {snapshot.snapshot_id: snapshot for snapshot in verified}
        self._manifests: dict[str, Snapshot] = {}

    def verified(self, snapshot_id: str | None) -> Snapshot:
        """The snapshot (latest when None), its files verified."""
        if snapshot_id is not None and snapshot_id in self._verified:
            return self._verified[snapshot_id]
        snapshot = open_snapshot(self._storage, snapshot_id)
        self._verified[snapshot.snapshot_id] = snapshot
        return snapshot

    def manifest_only(self, snapshot_id: str) -> Snapshot:
        """The snapshot with its manifest checked, its files not read."""
        if snapshot_id in self._verified:
            return self._verified[snapshot_id]
        if snapshot_id not in self._manifests:
            self._manifests[snapshot_id] = open_snapshot(self._storage, snapshot_id,
                                                         verify=False)
        return self._manifests[snapshot_id]


def _previous_names(storage: Storage, snapshot: Snapshot, opened: _Opened
                    ) -> pl.DataFrame | None:
    previous = snapshot.manifest.previous_snapshot
    if previous is None:
        return None
    try:
        names = opened.verified(previous).merchants.select("uscc", "name")
        return storage.retried_read(snapshot_prefix(previous), names.collect)
    except SnapshotError as err:
        # gc may have removed it; removed merchants then show without a name.
        log.info("previous snapshot %s unavailable for names: %s", previous, err)
        return None


def _data_docs_links(storage: Storage, snapshot_id: str) -> list[str]:
    own = report_key(snapshot_id)
    return sorted(
        relative_link(own, info.key)
        for info in storage.list(report_prefix(snapshot_id))
        if info.key.endswith(PAGE_FILE) and info.key != own
    )


def _complaints(storage: Storage, settings: Settings, snapshot: Snapshot,
                region_labels: dict[str, str]) -> tuple[dict | None, dict[str, dict]]:
    """The joint complaint analysis' headline numbers and charts; ``(None, {})`` for a snapshot
    published before the table existed."""
    try:
        frame = snapshot.complaints_summary
    except SnapshotError:
        return None, {}
    summary = storage.retried_read(snapshot_prefix(snapshot.snapshot_id), frame.collect)
    # The words of the table's own contract, as its data dictionary shows them.
    category = next(c for c in load_published_contracts()["complaints_summary"].columns
                    if c.name == "category")
    labels = complaint_category_labels({v.value: [v.description_zh] for v in category.values})
    return complaints_headline(summary), complaint_charts(summary, region_labels, labels)


def _change_words() -> tuple[dict[str, str], dict[str, str]]:
    """The changes table's kinds of change in words (``新增 added``) and the merchants columns
    a change names (``总分 score``), from the published contracts."""
    contracts = load_published_contracts()
    change = next(c for c in contracts["changes"].columns if c.name == "change")
    kinds = {v.value: value_label(v.value, v.description_zh) for v in change.values}
    fields = {c.name: f"{c.label_zh} {c.name}" for c in contracts["merchants"].columns}
    return kinds, fields


def report_data(storage: Storage, settings: Settings, snapshot_id: str | None = None, *,
                verified: Iterable[Snapshot] = ()) -> ReportData:
    """Read snapshot ``snapshot_id`` (latest by default; checksums verified) and the batch
    ledger, and compute the report. ``verified`` are snapshots the caller has already opened
    and verified (a publication passes its new snapshot and the previous one), read as they
    are instead of being opened and verified again. Raises
    :class:`~registry.snapshot.reader.SnapshotError` when the snapshot cannot be opened."""
    return _report_data(storage, settings, snapshot_id, _Opened(storage, verified))


def _report_data(storage: Storage, settings: Settings, snapshot_id: str | None,
                 opened: _Opened) -> ReportData:
    snapshot = opened.verified(snapshot_id)
    manifest = snapshot.manifest
    regions = load_regions(settings.config_dir)
    where = snapshot_prefix(manifest.snapshot_id)
    # The columns the report shows, not the table: it may hold millions of merchants.
    merchants = storage.retried_read(where, snapshot.merchants.select(
        "uscc", "name", "trusted", "regions", "grade", "score").collect)
    changes = storage.retried_read(where, snapshot.changes.collect)
    names = merchants.select("uscc", "name")
    previous = _previous_names(storage, snapshot, opened)
    if previous is not None:
        names = pl.concat([names, previous])
    labels = {code: f"{r.name_zh} {r.name_en}" for code, r in regions.regions.items()}
    trusted = trusted_by_region_and_grade(merchants, list(regions.regions))
    scores = score_distribution(merchants)
    complaints, complaints_charts = _complaints(storage, settings, snapshot, labels)
    change_labels, field_labels = _change_words()
    own = report_key(manifest.snapshot_id)
    return ReportData(
        snapshot_id=manifest.snapshot_id,
        as_of=manifest.as_of.isoformat(),
        published_at=f"{manifest.published_at:%Y-%m-%d %H:%M:%S %Z}",
        previous_snapshot=manifest.previous_snapshot,
        code_version=manifest.code_version,
        score_model_version=manifest.score_model.version,
        headline=headline_numbers(merchants, changes),
        regions=[{"code": c, "name_zh": r.name_zh, "name_en": r.name_en}
                 for c, r in regions.regions.items()],
        trusted=trusted,
        scores=scores,
        changes=top_changes(changes, names, change_labels=change_labels,
                            field_labels=field_labels),
        scorecards=region_scorecards(
            ledger.batches_committed_between(storage, _previous_published_at(manifest, opened),
                                             manifest.published_at),
            regions, manifest.input_batches, manifest.published_at,
            file_words=file_name_words(regions, load_contracts(settings.schemas_dir)),
            held=ledger.held_at(storage, manifest.published_at),
        ),
        gifts=gift_rankings(storage.retried_read(where, snapshot.products.collect)),
        manifest_link=relative_link(own, manifest_key(manifest.snapshot_id)),
        dictionary_link=relative_link(own, dictionary_key(manifest.snapshot_id)),
        data_docs_links=_data_docs_links(storage, manifest.snapshot_id),
        charts={
            "trusted": trusted_chart_spec(trusted, labels),
            "scores": score_chart_spec(scores),
            **complaints_charts,
        },
        complaints=complaints,
    )


def _previous_published_at(manifest: Manifest, opened: _Opened) -> datetime | None:
    """When the snapshot before ``manifest``'s was published: the report's data-quality cards
    count the uploads committed since. None for the first snapshot, or when the previous one
    is gone (garbage-collected): every upload is counted then."""
    if manifest.previous_snapshot is None:
        return None
    try:
        return opened.manifest_only(manifest.previous_snapshot).manifest.published_at
    except SnapshotError:
        return None


def _dictionary_contracts(snapshot: Snapshot) -> list[PublishedContract]:
    """The contracts of the tables ``snapshot`` has, in the order of its files, as it carries
    them; the registry's own for a snapshot published before snapshots carried their
    contracts."""
    files = [entry.path for entry in snapshot.manifest.files]
    contracts = []
    for table, own in load_published_contracts().items():
        try:
            position = files.index(snapshot.manifest.file(table).path)
        except SnapshotError:
            continue  # a table added after this snapshot was published
        try:
            contract = parse_published_contract(snapshot.contract(table).encode("utf-8"), table)
        except SnapshotError:
            contract = own
        contracts.append((position, contract))
    return [contract for _, contract in sorted(contracts, key=lambda pair: pair[0])]


def chart_runtime(storage: Storage) -> str:
    """The chart runtime every report inlines (:func:`registry.report.page.vega_runtime`),
    bundled once per version and stored at ``reports/static/chart-runtime/{version}.js``:
    later reports read it back instead of bundling it again."""
    key = chart_runtime_key(vega_runtime_version())
    try:
        return storage.read_bytes(key).decode("utf-8")
    except NotFound:
        pass
    runtime = vega_runtime()
    with contextlib.suppress(AlreadyExists):  # another report stored the same version first
        storage.put_if_absent(key, runtime.encode("utf-8"))
    return runtime


def write_report(
    storage: Storage,
    settings: Settings,
    snapshot_id: str | None = None,
    *,
    progress: ProgressCallback | None = None,
    verified: Iterable[Snapshot] = (),
    committed: LogEntry | None = None,
) -> str:
    """Build the report of snapshot ``snapshot_id`` (latest by default) and write it to
    ``reports/{snapshot_id}/index.html``, and its data dictionary beside it, replacing an
    earlier build. Returns the report's key. ``progress`` hears of each of its three stages;
    ``verified`` are snapshots already opened and verified (:func:`report_data`). The report
    is listed in the reports' index (:mod:`registry.report.index`) under the snapshot's log
    entry, ``committed`` (a publication passes its own), else found in the log; a snapshot
    the log never committed is not listed."""
    step = progress or (lambda _description, _done, _total: None)
    step("report: reading the snapshot and batch records", 0, 3)
    opened = _Opened(storage, verified)
    data = _report_data(storage, settings, snapshot_id, opened)
    step("report: rendering", 1, 3)
    page = report_html(data, chart_runtime(storage))
    key = report_key(data.snapshot_id)
    step("report: writing", 2, 3)
    storage.write_bytes(key, page.encode("utf-8"))
    dictionary = data_dictionary_html(
        _dictionary_contracts(opened.manifest_only(data.snapshot_id)), data.snapshot_id)
    storage.write_bytes(dictionary_key(data.snapshot_id), dictionary.encode("utf-8"))
    entry = committed or _committed_entry(storage, data.snapshot_id)
    update_reports_index(storage, add=[entry] if entry else [])
    step("report: written", 3, 3)
    log.info("wrote report %s", key)
    return key


def _committed_entry(storage: Storage, snapshot_id: str) -> LogEntry | None:
    """The log entry that committed ``snapshot_id``, or None: read from the whole log, for a
    report rebuilt on its own (``registry report ID``)."""
    return next((e for e in read_log(storage)
                 if e.action == "publish" and e.snapshot_id == snapshot_id), None)
