"""The ledger's questions of every run and every upload, after a year of uploads: their cost
must not grow with the ledger.

    .venv/bin/python -m bench.ledger_reads [--records N] [--held K] [--snapshots S]
                                           [--rounds R] [--server rgw|moto] [--out FILE]

A store gets ``--records`` committed batch records (default 4,448: what a year of the history
benchmark's daily uploads commits, ``make bench-history N=365``) over four datasets and four
regions, ``--held`` of them held by the gate and one of those released. It is written once on
local disk and once on S3 over loopback (Ceph RGW when its Debian packages are installed, else
moto's server, as in :mod:`bench.lookup`). Then, interleaved for ``--rounds`` rounds, each
question is answered the registry's way and from every record, as the registry did before:

- ``held`` (every run's summary, an idle run's too): ``registry.ledger.held_batches``, which
  lists the held index and reads the held records, against ``held_unreleased(batch_records(...),
  released_ids(...))``;
- ``report_cards`` (every publication's report): the batches its data-quality cards read, the
  day's uploads (the last 12 committed, found by ``registry.ledger.batches_committed_between``
  from the journal) and those held then (``registry.ledger.held_at``), against every record;
- ``latest_before`` (every upload: its duplicate check, and its batch gate's previous complete
  list): ``registry.ledger.latest_batch_before`` for an upload landing after the last batch of
  one region and dataset, against ``latest_before(batch_records(stream), order)``;
- ``reports_index`` (every publication's report, after ``--snapshots`` publications, default
  365: a year of daily ones): listing the new report in ``reports/index.html``,
  ``registry.report.update_reports_index``, which reads the list it keeps, against the index
  rebuilt from the commit log as the report did before (every log entry read, each snapshot's
  manifest and report asked after).

Both ways must give the same answer. Writes bench/results/ledger-reads-{timestamp}.json and
prints the median seconds and their ratio per store and question; compare ratios from one run,
the machine is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.lookup import moto_server, rgw_server, s3_storage
from registry import ledger
from registry.report import relative_link, reports_index_html, update_reports_index
from registry.snapshot.reader import LogEntry, list_snapshots
from registry.storage import LocalStorage, Storage
from registry.storage.layout import log_key, manifest_key, report_key, reports_index_key

RESULTS = Path(__file__).parent / "results"
_DATASETS = ("merchants", "complaints", "inspections", "gift_evaluations")
_REGIONS = ("SH", "JS", "ZJ", "AH")
_DAY0 = datetime(2026, 1, 1, 9, tzinfo=UTC)


def _record(n: int, status: str) -> ledger.BatchRecord:
    dataset, region = _DATASETS[n % 4], _REGIONS[(n // 4) % 4]
    at = _DAY0 + timedelta(hours=2 * n)
    sha = hashlib.sha256(f"{n}".encode()).hexdigest()
    batch_id = f"{at:%Y%m%dT%H%M%SZ}-{sha[:12]}"
    prefix = f"staged/{dataset}/region={region}/batch={batch_id}/"
    return ledger.BatchRecord(
        batch_id=batch_id, dataset=dataset, region=region, mode="upsert", sha256=sha,
        source_key=f"landing/{region}/{dataset}/upload-{n}.csv", landed_at=at,
        ingested_at=at, created_at=at, rows_in=3000, accepted=2997, quarantined=3,
        status=status, held_reasons=["batch_row_count"] if status == "held" else [],
        contract_version="1.0.0", staged_key=prefix + "part-0.parquet",
        quarantine_key=prefix.replace("staged/", "quarantine/", 1) + "part-0.parquet",
        file=f"upload-{n}.csv", format="csv", encoding="utf-8", error_counts={"DATE_INVALID": 3},
    )


# The uploads of a day (a year's records over 365 days): what the last report took in.
_DAY = 12


def _fill(storage: Storage, records: int, held: int) -> tuple[datetime, datetime]:
    """Commit the records; return the journal times before the last day's commits and after
    them (the previous and the last publication)."""
    every = max(records // max(held, 1), 1)
    held_at = {i * every for i in range(held)}
    since = _DAY0
    for n in range(records):
        if n == records - _DAY:
            time.sleep(0.01)
            since = datetime.now(UTC)
            time.sleep(0.01)
        ledger.commit_batch(storage, _record(n, "held" if n in held_at else "released"))
    time.sleep(0.01)
    until = datetime.now(UTC)
    first = _record(0, "held")
    ledger.write_release(storage, ledger.Release(
        batch_id=first.batch_id, dataset=first.dataset, region=first.region,
        released_by="bench", released_at=_DAY0, reason="checked"))
    ledger.held_batches(storage)  # index the store once, as its first run would
    return since, until


def _fill_snapshots(storage: Storage, snapshots: int) -> LogEntry:
    """Commit ``snapshots`` publications to the log, each with a manifest and a report page
    (placeholders: the index reads neither), and list them once, as the first report written
    would. Returns the last log entry."""
    entry: LogEntry | None = None
    for seq in range(1, snapshots + 1):
        at = _DAY0 + timedelta(days=seq)
        snapshot_id = f"{at:%Y%m%dT%H%M%S%f}Z-{hashlib.sha256(str(seq).encode()).hexdigest()[:8]}"
        entry = LogEntry(seq=seq, action="publish", snapshot_id=snapshot_id,
                         manifest=manifest_key(snapshot_id), manifest_sha256="0" * 64,
                         as_of=at.date(), previous_snapshot=entry.snapshot_id if entry else None,
                         committed_at=at)
        storage.write_bytes(manifest_key(snapshot_id), b"{}")
        storage.write_bytes(report_key(snapshot_id), b"<html></html>")
        storage.put_if_absent(log_key(seq), entry.to_json_bytes())
    assert entry is not None
    update_reports_index(storage)
    return entry


def _index_listed(storage: Storage) -> list[str]:
    page = storage.read_bytes(reports_index_key()).decode("utf-8")
    return [link.split("/")[0] for link in page.split('class="report-link" href="')[1:]]


def _reports_index_before(storage: Storage) -> list[str]:
    """The index rebuilt from the commit log, as every report did before the list."""
    key = reports_index_key()
    listed = [
        {"snapshot_id": s.snapshot_id, "as_of": s.as_of.isoformat(),
         "committed_at": f"{s.committed_at:%Y-%m-%d %H:%M:%S %Z}",
         "link": relative_link(key, report_key(s.snapshot_id))}
        for s in sorted(list_snapshots(storage), key=lambda s: s.seq, reverse=True)
        if storage.exists(report_key(s.snapshot_id))
    ]
    storage.write_bytes(key, reports_index_html(listed).encode("utf-8"))
    return _index_listed(storage)


# The stream asked about, and an upload landing after its last batch.
_STREAM = ("merchants", "SH")
_UPLOAD_ORDER = (_DAY0 + timedelta(days=3650), "landing/SH/merchants/next.csv", "next")


def _report_cards_read(storage: Storage, since: datetime, until: datetime) -> list[str]:
    """What the report's cards read now: the day's batches and those held then."""
    window = ledger.batches_committed_between(storage, since, until)
    return sorted(r.batch_id for r in [*window, *ledger.held_at(storage, until)])


def _report_cards_read_before(storage: Storage) -> list[str]:
    """The same batches, found by reading every record, as the report did before."""
    every = ledger.batch_records(storage)
    day = sorted(every, key=lambda r: r.created_at)[-_DAY:]
    held = ledger.held_unreleased(every, ledger.released_ids(storage))
    return sorted(r.batch_id for r in [*day, *held])


def _questions(since: datetime, until: datetime, last: LogEntry
               ) -> dict[str, dict[str, Callable[[Storage], Any]]]:
    return {
        "reports_index": {
            "registry": lambda s: (update_reports_index(s, add=[last]), _index_listed(s))[1],
            "every_record": _reports_index_before,
        },
        "held": {
            "registry": lambda s: [r.batch_id for r in ledger.held_batches(s)],
            "every_record": lambda s: [r.batch_id for r in ledger.held_unreleased(
                ledger.batch_records(s), ledger.released_ids(s))],
        },
        "latest_before": {
            "registry": lambda s: ledger.latest_batch_before(s, *_STREAM, _UPLOAD_ORDER),
            "every_record": lambda s: ledger.latest_before(ledger.batch_records(
                s, dataset=_STREAM[0], region=_STREAM[1]), _UPLOAD_ORDER),
        },
        "report_cards": {
            "registry": lambda s: _report_cards_read(s, since, until),
            "every_record": _report_cards_read_before,
        },
    }


def _measure(storage: Storage, rounds: int, window: tuple[datetime, datetime],
             last: LogEntry) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for question, ways in _questions(*window, last).items():
        seconds: dict[str, list[float]] = {name: [] for name in ways}
        answers = {}
        for _ in range(rounds):
            for name, way in ways.items():
                start = time.perf_counter()
                answers[name] = way(storage)
                seconds[name].append(time.perf_counter() - start)
        if answers["registry"] != answers["every_record"]:
            raise AssertionError(f"{question}: the answers differ: {answers}")
        medians = {name: statistics.median(values) for name, values in seconds.items()}
        out[question] = {
            "seconds": seconds, "median_s": {k: round(v, 4) for k, v in medians.items()},
            "ratio_every_record_to_registry": round(
                medians["every_record"] / medians["registry"], 1)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=4448)
    parser.add_argument("--held", type=int, default=4)
    parser.add_argument("--snapshots", type=int, default=365)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--server", choices=("rgw", "moto"),
                        default="rgw" if shutil.which("radosgw") else "moto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "records": args.records, "held_committed": args.held, "snapshots": args.snapshots,
        "rounds": args.rounds,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_avg_before": list(os.getloadavg()), "stores": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-held-") as scratch:
        local = LocalStorage(Path(scratch) / "root")
        window = _fill(local, args.records, args.held)
        last = _fill_snapshots(local, args.snapshots)
        report["stores"]["local"] = _measure(local, args.rounds, window, last)
    with (rgw_server(64 * 1024**2) if args.server == "rgw" else moto_server()) as server:
        s3 = s3_storage(server)
        window = _fill(s3, args.records, args.held)
        last = _fill_snapshots(s3, args.snapshots)
        report["stores"][f"s3-{args.server}"] = _measure(s3, args.rounds, window, last)
    report["load_avg_after"] = list(os.getloadavg())
    out = args.out or RESULTS / f"ledger-reads-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.records:,} batch records, {args.held} held, {args.snapshots} snapshots; "
          f"median of {args.rounds} rounds")
    for name, store in report["stores"].items():
        for question, found in store.items():
            m = found["median_s"]
            print(f"  {name:<8} {question:<14} registry {m['registry']:.3f} s   every record "
                  f"{m['every_record']:.3f} s   ({found['ratio_every_record_to_registry']} x)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
