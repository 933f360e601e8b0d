"""Each step of the 1,000,000-row ingest alone, and the least time their work can take.

    .venv/bin/python -m bench.ingest_steps [--rows N] [--repeat R] [--out FILE]

``bench.ingest_1m`` times the whole ingest against the floor. This times the work the ingest
has to do, one step at a time in one process, on the same generated Jiangsu file: reading and
hashing the upload, archiving it, reading its table (in process, and in a reading worker),
normalising, the row rules and the split into accepted and quarantined rows, the staged
schema check, the staged and quarantined Parquet, and the Great Expectations gate with its
Data Docs. Each step runs ``--repeat`` times and its least CPU time counts (CPU time of every
thread and of the reading worker: another process on the machine disturbs it much less than
the wall clock).

On ``os.cpu_count()`` cores a run cannot take less wall time than its CPU time divided by the
cores, however well its steps overlap. So the sum of the steps' CPU time, divided by the cores
and by the floor's wall time, is the least ratio to the floor that the ingest could reach
without doing less work: the ``bound`` in the output, with the upload read in process and
with it read in a reading worker. Results go to bench/results/ingest_steps-{timestamp}.json (or
``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from bench.ingest_1m import LANDING_KEY, RESULTS, _timed, check_outcome, merchants_csv
from registry import ledger
from registry.config.contracts import load_contracts, load_vocabulary
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.demo.samples import SampleFile
from registry.ingest import validation
from registry.ingest.pipeline import ingest_object, read_limits, staged_frame
from registry.ingest.readers import upload_table
from registry.ingest.validation import checked_upload, staged_schema
from registry.quality import staged_batch_gate
from registry.storage import LocalStorage, layout

# Steps every ingest of new bytes does, in order. "read_table" is either the in-process read or
# the worker's. The in-process read, the normalising and the rules and split are timed inside
# one in-process ``checked_upload``.
WORK = ("read_bytes", "sha256", "archive", "read_table", "normalise", "rules_and_split",
        "staged_schema", "staged_parquet", "quarantine_parquet", "gx_gate")


def measure(sample: SampleFile, repeat: int, work: Path) -> dict:
    """Best (least) wall and CPU seconds of every step, the floor and the whole ingest."""
    source = sample.path
    settings = Settings(_env_file=None)
    contract = load_contracts(settings.schemas_dir)["merchants"]
    vocabulary = load_vocabulary(settings.schemas_dir)
    regions = load_regions(settings.config_dir)
    headers = set(contract.header_index())
    limits = {"in_process": read_limits(Settings(_env_file=None, read_in_worker=False)),
              "in_worker": read_limits(settings)}
    today = datetime.now(UTC).date()
    storage = LocalStorage(work / "store")
    storage.write_bytes(LANDING_KEY, source.read_bytes())
    runs: dict[str, list[tuple[float, float]]] = {}

    def timed(name: str, fn):
        wall, cpu, result = _timed(fn)
        runs.setdefault(name, []).append((wall, cpu))
        return result

    for n in range(repeat):
        timed("floor", lambda: pl.read_csv(source).write_parquet(work / "floor.parquet"))
        data = timed("read_bytes", lambda: storage.read_bytes(LANDING_KEY))
        sha256 = timed("sha256", lambda d=data: hashlib.sha256(d).hexdigest())
        # A new name each time: put_if_absent does not write an object that exists.
        timed("archive", lambda d=data, k=f"{sha256}-{n}": storage.put_if_absent(
            layout.raw_key("JS", "merchants", k, "csv"), d))
        timed("read_table_in_worker", lambda d=data: upload_table(d, headers, limits["in_worker"]))
        with _phases_of_checked_upload() as phases:
            check = timed("checked_upload_in_process", lambda d=data: checked_upload(
                d, source.name, contract=contract, vocabulary=vocabulary, regions=regions,
                region="JS", limits=limits["in_process"], today=today))
        whole = runs["checked_upload_in_process"][-1]
        read, normalise = phases["upload_table"], phases["normalized"]
        runs.setdefault("read_table_in_process", []).append(read)
        runs.setdefault("normalise", []).append(normalise)
        runs.setdefault("rules_and_split", []).append(
            (whole[0] - read[0] - normalise[0], whole[1] - read[1] - normalise[1]))
        now = datetime.now(UTC)
        batch = f"{now:%Y%m%dT%H%M%S%f}Z-steps"
        staged = staged_frame(check.accepted, contract.staged_schema(), ledger.IngestClaim(
            batch_id=batch, upload_id=batch, region="JS", dataset="merchants", sha256=sha256,
            source_key=LANDING_KEY, version="bench", landed_at=now, claimed_at=now,
            ingested_at=now, state="claimed"))
        timed("staged_schema", lambda s=staged: staged_schema(contract).validate(s))
        timed("staged_parquet", lambda s=staged, b=batch: storage.write_parquet(
            s, layout.staged_prefix("merchants", "JS", b) + "part-0.parquet"))
        timed("quarantine_parquet", lambda q=check.quarantined, b=batch: storage.write_parquet(
            q, layout.quarantine_prefix("merchants", "JS", b) + "part-0.parquet"))
        order = ledger.batch_order(now, LANDING_KEY, batch)
        timed("gx_gate", lambda s=staged, b=batch, o=order: staged_batch_gate(
            storage, settings, s, region="JS", dataset="merchants", batch_id=b, mode="append",
            today=today, order=o))
        for where, in_worker in (("in_worker", True), ("in_process", False)):
            fresh = LocalStorage(work / f"whole-{where}-{n}")
            fresh.write_bytes(LANDING_KEY, data)
            outcome = timed(f"ingest_{where}", lambda s=fresh, w=in_worker: ingest_object(
                s, Settings(_env_file=None, storage_uri=s.root_uri, read_in_worker=w),
                LANDING_KEY))
            check_outcome(sample, outcome.rows_in, outcome.quarantined)
            shutil.rmtree(fresh.root)
        del data, check, staged

    return {name: {"wall_s": round(min(w for w, _ in r), 3),
                   "cpu_s": round(min(c for _, c in r), 3)} for name, r in runs.items()}


@contextlib.contextmanager
def _phases_of_checked_upload() -> Iterator[dict[str, tuple[float, float]]]:
    """(wall, CPU) seconds of the read and of the normalising inside one ``checked_upload``
    call, which does them one after the other: the rest of its time is the row rules and the
    split into accepted and quarantined rows."""
    phases: dict[str, tuple[float, float]] = {}
    originals = {name: getattr(validation, name) for name in ("upload_table", "normalized")}

    def timing(name: str, fn):
        def timed_call(*args, **kwargs):
            wall, cpu, result = _timed(lambda: fn(*args, **kwargs))
            phases[name] = (wall, cpu)
            return result
        return timed_call

    for name, fn in originals.items():
        setattr(validation, name, timing(name, fn))
    try:
        yield phases
    finally:
        for name, fn in originals.items():
            setattr(validation, name, fn)


def bounds(best: dict, cores: int) -> dict:
    """Per way of reading the table: the steps' CPU seconds summed, that over the cores (the
    least wall time that work allows), its ratio to the floor; and the same for the whole
    ingest's own CPU time, beside its measured wall time and ratio."""
    floor = best["floor"]["wall_s"]
    out = {}
    for where in ("in_process", "in_worker"):
        cpu = sum(best[f"read_table_{where}" if s == "read_table" else s]["cpu_s"] for s in WORK)
        ingest = best[f"ingest_{where}"]
        out[where] = {
            "work_cpu_s": round(cpu, 3),
            "least_wall_s": round(cpu / cores, 3),
            "bound_ratio": round(cpu / cores / floor, 2),
            "ingest_cpu_s": ingest["cpu_s"],
            "ingest_bound_ratio": round(ingest["cpu_s"] / cores / floor, 2),
            "ingest_wall_s": ingest["wall_s"],
            "ingest_ratio": round(ingest["wall_s"] / floor, 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="results file (default: in bench/results/)")
    args = parser.parse_args()
    sample = merchants_csv(args.rows)
    cores = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="bench-steps-"))
    try:
        best = measure(sample, args.repeat, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bound = bounds(best, cores)
    out = args.out or RESULTS / f"ingest_steps-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "bench": "ingest_steps", "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": args.rows, "repeat": args.repeat, "cores": cores,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "steps": best, "bound": bound,
    }, indent=2) + "\n")
    print(f"{args.rows:,} rows; least of {args.repeat} runs of each step, alone, on {cores} cores")
    print(f"{'floor (read_csv + write_parquet)':36s} {best['floor']['wall_s']:6.2f} s wall "
          f"{best['floor']['cpu_s']:6.2f} s CPU")
    for step in WORK:
        names = ([f"read_table_{w}" for w in ("in_process", "in_worker")]
                 if step == "read_table" else [step])
        for name in names:
            wall, cpu = best[name]["wall_s"], best[name]["cpu_s"]
            print(f"  {name:34s} {wall:6.2f} s wall {cpu:6.2f} s CPU")
    for where, b in bound.items():
        print(f"table read {where.replace('_', ' ')}: the steps' work {b['work_cpu_s']:.2f} CPU-s, "
              f"at least {b['least_wall_s']:.2f} s on {cores} cores = x{b['bound_ratio']:.2f} "
              f"the floor; the whole ingest did {b['ingest_cpu_s']:.2f} CPU-s "
              f"(x{b['ingest_bound_ratio']:.2f}) and took {b['ingest_wall_s']:.2f} s = "
              f"x{b['ingest_ratio']:.2f}")
    print(f"(results: {out})")


if __name__ == "__main__":
    main()
