"""Which batches are held, after a year of uploads: every run's summary asks (an idle run
included), so its cost must not grow with the ledger.

    .venv/bin/python -m bench.held [--records N] [--held K] [--rounds R] [--server rgw|moto]
                                   [--out FILE]

A store gets ``--records`` committed batch records (default 4,448: what a year of the history
benchmark's daily uploads commits, ``make bench-history N=365``), ``--held`` of them held by
the gate and one of those released. It is written once on local disk and once on S3 over
loopback (Ceph RGW when its Debian packages are installed, else moto's server, as in
:mod:`bench.lookup`). Then, interleaved for ``--rounds`` rounds:

- ``indexed``: ``registry.ledger.held_batches``, which lists the held index and reads the held
  records (docs/architecture.md §5);
- ``every_record``: the same answer from every record (``held_unreleased(batch_records(...),
  released_ids(...))``), which is what the registry did before the index.

Both must give the same batches. Writes bench/results/held-{timestamp}.json and prints the
median seconds and their ratio per store; compare ratios from one run, the machine is shared.
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


def _fill(storage: Storage, records: int, held: int) -> None:
    every = max(records // max(held, 1), 1)
    held_at = {i * every for i in range(held)}
    for n in range(records):
        ledger.commit_batch(storage, _record(n, "held" if n in held_at else "released"))
    first = _record(0, "held")
    ledger.write_release(storage, ledger.Release(
        batch_id=first.batch_id, dataset=first.dataset, region=first.region,
        released_by="bench", released_at=_DAY0, reason="checked"))
    ledger.held_batches(storage)  # index the store once, as its first run would


def _every_record(storage: Storage) -> list[ledger.BatchRecord]:
    return ledger.held_unreleased(ledger.batch_records(storage), ledger.released_ids(storage))


def _measure(storage: Storage, rounds: int) -> dict[str, Any]:
    ways: dict[str, Callable[[Storage], list[ledger.BatchRecord]]] = {
        "indexed": ledger.held_batches, "every_record": _every_record}
    seconds: dict[str, list[float]] = {name: [] for name in ways}
    answers = {}
    for _ in range(rounds):
        for name, way in ways.items():
            start = time.perf_counter()
            answers[name] = [r.batch_id for r in way(storage)]
            seconds[name].append(time.perf_counter() - start)
    if answers["indexed"] != answers["every_record"]:
        raise AssertionError(f"the held batches differ: {answers}")
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    return {"held": len(answers["indexed"]), "seconds": seconds,
            "median_s": {k: round(v, 4) for k, v in medians.items()},
            "ratio_every_record_to_indexed": round(medians["every_record"] / medians["indexed"],
                                                   1)}


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
        _fill(local, args.records, args.held)
        report["stores"]["local"] = _measure(local, args.rounds)
    with (rgw_server(64 * 1024**2) if args.server == "rgw" else moto_server()) as server:
        s3 = s3_storage(server)
        _fill(s3, args.records, args.held)
        report["stores"][f"s3-{args.server}"] = _measure(s3, args.rounds)
    report["load_avg_after"] = list(os.getloadavg())
    out = args.out or RESULTS / f"held-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.records:,} batch records, {report['stores']['local']['held']} held; "
          f"median of {args.rounds} rounds")
    for name, store in report["stores"].items():
        m = store["median_s"]
        print(f"  {name:<10} indexed {m['indexed']:.3f} s   every record "
              f"{m['every_record']:.3f} s   ({store['ratio_every_record_to_indexed']} x)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
