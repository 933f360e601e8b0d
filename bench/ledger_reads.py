"""The ledger's questions of every run and every upload, after a year of uploads: their cost
must not grow with the ledger.

    .venv/bin/python -m bench.ledger_reads [--records N] [--held K] [--rounds R]
                                           [--server rgw|moto] [--out FILE]

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
  one region and dataset, against ``latest_before(batch_records(stream), order)``.

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
from registry.storage import LocalStorage, Storage

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


def _questions(since: datetime, until: datetime
               ) -> dict[str, dict[str, Callable[[Storage], Any]]]:
    return {
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


def _measure(storage: Storage, rounds: int, window: tuple[datetime, datetime]
             ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for question, ways in _questions(*window).items():
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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--server", choices=("rgw", "moto"),
                        default="rgw" if shutil.which("radosgw") else "moto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict[str, Any] = {
        "records": args.records, "held_committed": args.held, "rounds": args.rounds,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_avg_before": list(os.getloadavg()), "stores": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-held-") as scratch:
        local = LocalStorage(Path(scratch) / "root")
        window = _fill(local, args.records, args.held)
        report["stores"]["local"] = _measure(local, args.rounds, window)
    with (rgw_server(64 * 1024**2) if args.server == "rgw" else moto_server()) as server:
        s3 = s3_storage(server)
        window = _fill(s3, args.records, args.held)
        report["stores"][f"s3-{args.server}"] = _measure(s3, args.rounds, window)
    report["load_avg_after"] = list(os.getloadavg())
    out = args.out or RESULTS / f"ledger-reads-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.records:,} batch records, {args.held} held; median of {args.rounds} rounds")
    for name, store in report["stores"].items():
        for question, found in store.items():
            m = found["median_s"]
            print(f"  {name:<8} {question:<14} registry {m['registry']:.3f} s   every record "
                  f"{m['every_record']:.3f} s   ({found['ratio_every_record_to_registry']} x)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
