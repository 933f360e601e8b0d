"""Ingest 1,000,000 merchant rows from CSV and compare with the floor, in the same run.

    .venv/bin/python -m bench.ingest_1m [--rows N] [--repeat R] [--out FILE]
    .venv/bin/python -m bench.ingest_1m --against REV [--rounds K] [--rows N] [--repeat R]

- floor: polars ``read_csv`` + ``write_parquet`` of the same file (no validation at all);
- stage: parse, normalise and validate every row, check the staged schema, write staged and
  quarantined Parquet (local storage in a temporary folder): the target is <= 3x the floor;
- ingest: all of ``registry.ingest.pipeline.ingest_object``: also hash and archive the raw
  bytes, the ledger claim, the batch gate, the batch record and the receipt. The rows are
  checked while the bytes are hashed, archived and claimed, and the gate runs while the Parquet
  files are written, so the gate's own wall time overlaps the rest and is not a share of the total;
- ingest_read_in_process: the same with ``REGISTRY_READ_IN_WORKER=false``, the upload read
  once in the ingest process instead of first in a worker held to the time and memory limits.

The input is one Jiangsu merchants CSV from the demo generator (``registry.demo.samples``,
the benchmark's fixed seed, as of ``bench.generate.BENCH_TODAY``), generated once into
bench/data/ (gitignored) beside a description of it: Chinese or English headers, mixed date
spellings, Traditional names, and about 3% bad rows of many kinds, each of which the ingest
must quarantine (the run stops if it does not). Each step runs ``--repeat`` times, floor and
ingest alternating; the best time of each counts. Results go to bench/results/ingest_1m.json
(or ``--out``).

``--against REV`` measures a change: this checkout (uncommitted edits included) and a
temporary git worktree of REV run the whole benchmark in turn, ``--rounds`` times each, each in
its own process, sharing the generated input. A single run of each side moves by more than
most changes on a shared two-core machine; taking turns exposes both sides to the same
neighbours, and the medians of the rounds are compared. Every round is kept in
bench/results/ingest_1m-vs-{REV}.json.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import psutil

from bench.generate import BENCH_TODAY
from registry import ledger
from registry.config.contracts import load_contracts, load_vocabulary
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.demo.samples import (
    DEFAULT_SEED,
    SAMPLES_VERSION,
    SampleFile,
    SampleSizes,
    write_sample_uploads,
)
from registry.ingest.pipeline import ingest_object, read_limits, staged_frame
from registry.ingest.validation import checked_upload, staged_schema
from registry.storage import LocalStorage, layout

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
TARGET_RATIO = 3.0
LANDING_KEY = "landing/JS/merchants/merchants.csv"
SEED = DEFAULT_SEED


def merchants_csv(rows: int) -> SampleFile:
    """A Jiangsu merchants upload of ``rows`` rows from the demo generator, in bench/data/, and
    what the ingest must make of it; generated on first use. The file name carries the seed and
    the generator's version, so a change to the generator makes a new file."""
    source = DATA / f"merchants_{rows}-seed{SEED}-v{SAMPLES_VERSION}.csv"
    manifest = source.with_suffix(".json")
    if source.exists() and manifest.exists():
        return SampleFile(**{**json.loads(manifest.read_text()), "path": source})
    print(f"generating {source} ...", flush=True)
    settings = Settings(_env_file=None)
    regions = load_regions(settings.config_dir)
    jiangsu = regions.model_copy(update={"regions": {"JS": regions.regions["JS"]}})
    DATA.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{source.stem}.", dir=DATA) as tmp:
        (sample,) = write_sample_uploads(
            Path(tmp), jiangsu, load_contracts(settings.schemas_dir),
            SampleSizes(merchants=rows, complaints=0, inspections=0, gift_evaluations=0),
            seed=SEED, today=BENCH_TODAY, formats=("csv",), parts=1,
        )
        sample.path.replace(source)
    sample = dataclasses.replace(sample, path=source)
    manifest.write_text(json.dumps({**dataclasses.asdict(sample), "path": source.name},
                                   indent=1) + "\n")
    return sample




def check_outcome(sample: SampleFile, rows_in: int, quarantined: int) -> None:
    """Raise if the ingest did not read every row or did not quarantine exactly the bad ones:
    a time for an ingest that gets the rows wrong is no result."""
    expected = sample.rejected
    if (rows_in, quarantined) != (sample.rows, expected):
        raise SystemExit(f"{sample.path.name}: the ingest read {rows_in:,} rows and quarantined "
                         f"{quarantined:,}; the file has {sample.rows:,} rows, {expected:,} bad")


def _cpu_seconds() -> float:
    """CPU seconds of every thread of this process and of its child processes: uploads are
    first read in a worker process that lives across runs, so its time is read while it runs
    (and ``os.times`` has the children already reaped)."""
    reaped = os.times()
    total = time.process_time() + reaped.children_user + reaped.children_system
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = child.cpu_times()
            total += times.user + times.system
    return total


def _timed(fn):
    """(wall seconds, CPU seconds of every thread and child process, result) of one call."""
    start, cpu = time.perf_counter(), _cpu_seconds()
    result = fn()
    return time.perf_counter() - start, _cpu_seconds() - cpu, result


STEPS = ("floor", "stage", "ingest", "ingest_read_in_process")


def _git(*args: str, cwd: Path = HERE.parent) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def _median_summary(reports: list[dict]) -> dict:
    """Per step: the median over the rounds of each round's best wall and CPU time, and of its
    ratios to the same round's floor (a ratio is only meaningful within one run)."""
    out: dict = {}
    for step in STEPS:
        out[step] = {
            "wall_s": round(statistics.median(r[step]["wall_s"] for r in reports), 3),
            "cpu_s": round(statistics.median(r[step]["cpu_s"] for r in reports), 3),
        }
        if step != "floor":
            out[step]["wall_ratio"] = round(statistics.median(
                r[step]["wall_s"] / r["floor"]["wall_s"] for r in reports), 2)
            out[step]["cpu_ratio"] = round(statistics.median(
                r[step]["cpu_s"] / r["floor"]["cpu_s"] for r in reports), 2)
    out["gx_gate_wall_s"] = round(statistics.median(r["gx_gate"]["wall_s"] for r in reports), 3)
    return out


def compare(rev: str, *, rounds: int, repeat: int, rows: int, source: Path,
            out: Path | None = None) -> Path:
    """Run this checkout and a worktree of ``rev`` in turn (see the module docstring); return
    the results file (``out``, by default bench/results/ingest_1m-vs-{commit}.json)."""
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    reports: dict[str, list[dict]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="bench-against-") as tmp:
        tree = Path(tmp) / "tree"
        _git("worktree", "add", "--detach", str(tree), commit)
        try:
            # The same input for both sides, generated once: with its description, and also as
            # merchants_{rows}.csv, the name an older revision's benchmark reads.
            data = tree / "bench" / "data"
            data.mkdir(parents=True, exist_ok=True)
            for name in {source.name, f"merchants_{rows}.csv"}:
                (data / name).symlink_to(source)
            (data / source.with_suffix(".json").name).symlink_to(source.with_suffix(".json"))
            sides = {"before": (tree, tree / "bench" / "results" / "ingest_1m.json"),
                     "after": (HERE.parent, Path(tmp) / "after.json")}
            for n in range(rounds):
                for side, (root, result) in sides.items():
                    print(f"round {n + 1}/{rounds}: {side} ...", flush=True)
                    command = [sys.executable, "-m", "bench.ingest_1m", "--rows", str(rows),
                               "--repeat", str(repeat)]
                    if side == "after":  # REV's benchmark may predate --out
                        command += ["--out", str(result)]
                    # Each side imports its own registry package (and its reading workers do).
                    subprocess.run(command, cwd=root, check=True, stdout=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONPATH": str(root)})
                    reports[side].append(json.loads(result.read_text()))
        finally:
            _git("worktree", "remove", "--force", str(tree))
    summary = {side: _median_summary(runs) for side, runs in reports.items()}
    out = out or RESULTS / f"ingest_1m-vs-{commit[:8]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "bench": "ingest_1m --against",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "before": {"rev": rev, "commit": commit},
        "after": {"commit": _git("rev-parse", "HEAD"), "uncommitted_changes": dirty},
        "rows": rows, "rounds": rounds, "repeat": repeat,
        "median": summary, "rounds_reports": reports,
    }, indent=2) + "\n")
    print(f"{rows:,} rows; {rounds} rounds of best-of-{repeat}, taking turns; medians:")
    after = "after" + (" (uncommitted)" if dirty else "")
    print(f"{'':34s} {'before ' + commit[:8]:>24s} {after:>24s}")
    for step in STEPS:
        cells = []
        for side in ("before", "after"):
            m = summary[side][step]
            ratio = "" if step == "floor" else f" x{m['wall_ratio']:.2f}"
            cells.append(f"{m['wall_s']:6.2f} s{ratio:>7s}")
        print(f"{step:34s} {cells[0]:>24s} {cells[1]:>24s}")
    print(f"{'the GX batch gate':34s} {summary['before']['gx_gate_wall_s']:22.2f} s "
          f"{summary['after']['gx_gate_wall_s']:22.2f} s")
    print(f"(every round: {out})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, help="results file (default: in bench/results/)")
    parser.add_argument("--against", metavar="REV",
                        help="compare this checkout with git revision REV, taking turns")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    sample = merchants_csv(args.rows)
    source = sample.path
    if args.against:
        compare(args.against, rounds=args.rounds, repeat=args.repeat, rows=args.rows,
                source=source, out=args.out)
        return
    out = args.out or RESULTS / "ingest_1m.json"
    size = source.stat().st_size
    settings = Settings(_env_file=None)
    contract = load_contracts(settings.schemas_dir)["merchants"]
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in STEPS}
    gate_runs: list[tuple[float, float, str]] = []  # (gate s, ingest wall s, batch status)
    outcome = None
    try:
        def floor() -> None:
            pl.read_csv(source).write_parquet(work / "floor.parquet")

        def stage(storage: LocalStorage):
            # Parse, normalise, validate every row, check the staged schema, write the staged
            # and quarantined Parquet: what the floor's read + write becomes.
            now = datetime.now(UTC)
            check = checked_upload(
                source.read_bytes(), source.name, contract=contract,
                vocabulary=load_vocabulary(settings.schemas_dir),
                regions=load_regions(settings.config_dir), region="JS",
                limits=read_limits(settings), today=now.date(),
            )
            batch = f"{now:%Y%m%dT%H%M%S%f}Z-bench"
            staged = staged_frame(check.accepted, contract.staged_schema(), ledger.IngestClaim(
                batch_id=batch, upload_id=batch, region="JS", dataset="merchants",
                sha256="0" * 64, source_key=LANDING_KEY, version="bench", landed_at=now,
                claimed_at=now, ingested_at=now, state="claimed"))
            staged_schema(contract).validate(staged)
            storage.write_parquet(staged, layout.staged_prefix("merchants", "JS", batch)
                                  + "part-0.parquet")
            storage.write_parquet(check.quarantined, layout.quarantine_prefix(
                "merchants", "JS", batch) + "part-0.parquet")
            return check

        # Interleaved, so that a busy moment on a shared machine hits every side alike. CPU
        # time (all threads) is reported too: it says how much work each side does, which
        # other processes on the machine disturb much less than the wall clock.
        for n in range(args.repeat):
            wall, cpu, _ = _timed(floor)
            runs["floor"].append((wall, cpu))
            storage = LocalStorage(work / f"stage{n}")
            wall, cpu, _ = _timed(lambda s=storage: stage(s))
            runs["stage"].append((wall, cpu))
            shutil.rmtree(storage.root)
            # The whole ingest_object: also hashing and archiving the raw bytes, the ledger,
            # the batch gate of later issues, the batch record and the receipt.
            storage = LocalStorage(work / f"ingest{n}")
            storage.write_bytes(LANDING_KEY, source.read_bytes())
            wall, cpu, outcome = _timed(lambda s=storage: ingest_object(
                s, Settings(_env_file=None, storage_uri=s.root_uri), LANDING_KEY))
            runs["ingest"].append((wall, cpu))
            check_outcome(sample, outcome.rows_in, outcome.quarantined)
            # The Great Expectations batch gate's own wall time, as the batch record has it.
            record = ledger.read_batch_record(storage, "merchants", "JS", outcome.batch_id)
            gate_runs.append((record.quality["seconds"], wall, record.status))
            shutil.rmtree(storage.root)
            # The same with REGISTRY_READ_IN_WORKER=false: what reading every upload first in
            # a worker held to the time and memory limits costs.
            storage = LocalStorage(work / f"inproc{n}")
            storage.write_bytes(LANDING_KEY, source.read_bytes())
            wall, cpu, in_process = _timed(lambda s=storage: ingest_object(
                s, Settings(_env_file=None, storage_uri=s.root_uri, read_in_worker=False),
                LANDING_KEY))
            runs["ingest_read_in_process"].append((wall, cpu))
            check_outcome(sample, in_process.rows_in, in_process.quarantined)
            shutil.rmtree(storage.root)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    best = {name: (min(w for w, _ in r), min(c for _, c in r)) for name, r in runs.items()}
    floor_wall, floor_cpu = best["floor"]
    report = {
        "bench": "ingest_1m",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "polars": pl.__version__},
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "rows": args.rows,
        "csv_bytes": size,
        "input": {"file": source.name, "generator": "registry.demo.samples",
                  "samples_version": SAMPLES_VERSION, "seed": SEED,
                  "today": BENCH_TODAY.isoformat(), "bad_rows": sample.rejected},
        "target_ratio": TARGET_RATIO,
        "accepted": outcome.accepted,
        "quarantined": outcome.quarantined,
        **{
            name: {
                "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                "wall_runs_s": [round(w, 3) for w, _ in runs[name]],
                "cpu_runs_s": [round(c, 3) for _, c in runs[name]],
                **({} if name == "floor" else {
                    "wall_ratio": round(wall / floor_wall, 2),
                    "cpu_ratio": round(cpu / floor_cpu, 2),
                }),
            }
            for name, (wall, cpu) in best.items()
        },
    }
    # The run with the best ingest wall time, and how long its batch gate ran (beside the
    # Parquet writes: the share is of the ingest's time, not of its work).
    gate_s, gate_ingest_s, gate_status = min(gate_runs, key=lambda g: g[1])
    report["gx_gate"] = {
        "wall_s": gate_s, "share_of_ingest": round(gate_s / gate_ingest_s, 3),
        "wall_runs_s": [g for g, _, _ in gate_runs], "batch_status": gate_status,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.rows:,} rows, {size / 1e6:.0f} MB CSV; accepted {outcome.accepted:,}, "
          f"quarantined {outcome.quarantined:,}; load {os.getloadavg()[0]:.1f}")
    labels = {"floor": "floor (read_csv + write_parquet)",
              "stage": "parse + validate + stage",
              "ingest": "ingest_object (all of it)",
              "ingest_read_in_process": "  the same, read in process only"}
    for name, (wall, cpu) in best.items():
        ratios = "" if name == "floor" else (
            f"  x{wall / floor_wall:.2f} wall, x{cpu / floor_cpu:.2f} CPU"
            f" (target <= {TARGET_RATIO})"
        )
        print(f"{labels[name]:34s} {wall:6.2f} s wall {cpu:6.2f} s CPU{ratios}")
    print(f"{'  the GX batch gate, beside the writes':34s} {gate_s:6.2f} s wall "
          f"({gate_s / gate_ingest_s:.0%} of that ingest's time; batch {gate_status})")


if __name__ == "__main__":
    main()
