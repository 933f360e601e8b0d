"""The history benchmark: councils re-upload their lists every day, and publication must not
slow down as the days pile up.

    make bench-history [N=45] [SIZE=9000]
        (.venv/bin/python -m bench.history --days N --merchants SIZE [--mode incremental|full]
         [--no-idle-run] [--seed S] [--out FILE] [--keep])

Day 0 is the initial load; then, for N days, every council sends its complete merchants list
again with a few rows changed, the complaints and inspections of the day, and now and then a
round of gift evaluations (:mod:`bench.history_data`: the registry keeps the same size, SIZE
merchants, throughout). The uploads are not generated as files and ingested: at tier-M size a
year of real ingests would take days. Each one is written as ingestion leaves it, staged
Parquet and a batch record committed through the ledger's own API
(:func:`registry.ledger.commit_batch`), so publication reads exactly what it reads after an
ingest. The batch gate does not run.

After each day's uploads, the library publication (:func:`registry.publish.publish_snapshot`)
runs as of that day, on local disk. Measured per day:

- ``publish_s``: the whole publication (build, personal-data guard, registry gate, data files,
  manifest, commit, latest, report), and its CPU time, steadier on a busy machine;
- ``build_s``: its first stage, from ``publish: building the registry`` to
  ``publish: checking for personal data`` (reading and merging the staged rows in effect and
  building the tables), timed with the ``progress`` callback, and its CPU time; every stage's
  wall and CPU time is kept too;
- ``idle_run_s``, on day 0, the baseline and compared days, every 30th day and the last:
  ``registry run --as-of DAY`` as a subprocess with nothing new to ingest, against a running
  Prefect server (``prefect server start`` on a free loopback port, set up by
  ``registry orchestration setup``), from start to exit; and its CPU time.

Publication modes: when this tree's ``publish_snapshot`` takes ``full`` (``full=True`` rebuilds
everything, ``full=False`` publishes incrementally), both modes run, each on its own root
receiving the same uploads, their order alternating from day to day; otherwise its only mode
is the full rebuild, recorded as ``full``. ``--mode`` picks one. The runs with nothing new use
the root of the mode ``registry run`` publishes with (``publish_snapshot``'s default), and are
left out when ``--mode`` picks another.

Targets, as ratios within one run (a shared machine is noisy): with the registry's size
unchanged, day 45 against day 3, the read-and-merge stage and the whole publication each at
most 1.5 times; a run with nothing new at most 5 s. Beside the single days, the ratios of the
medians of three days (days 2-4 against 43-45) and of CPU times are given: steadier when other
work shares the machine. Writes ``bench/results/history-{timestamp}.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import psutil

from bench.history_data import CouncilHistory, as_of_day, stage_upload
from bench.prefect_server import PrefectServer
from registry.config.settings import Settings
from registry.publish import PublishResult, publish_snapshot
from registry.storage import LocalStorage, Storage

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
DEFAULT_DAYS = 45
DEFAULT_MERCHANTS = 9_000
DEFAULT_SEED = 20241130
BASELINE_DAY = 3
COMPARE_DAY = 45
IDLE_EVERY = 30
# What each day's publication is compared on.
_FIGURES = ("publish_s", "publish_cpu_s", "build_s", "build_cpu_s")
TARGETS = {"build_ratio": 1.5, "publish_ratio": 1.5, "idle_run_s": 5.0}
# The publication's first stage: reading and merging the staged rows, building the tables.
BUILD_STAGE = "publish: building the registry"


# -- publication ---------------------------------------------------------------------------------


def publish_modes() -> dict[str, dict[str, bool]]:
    """The modes this tree's ``publish_snapshot`` offers, with the arguments that pick each."""
    if "full" not in inspect.signature(publish_snapshot).parameters:
        return {"full": {}}
    return {"incremental": {"full": False}, "full": {"full": True}}


def default_mode() -> str:
    """The mode ``publish_snapshot`` (and so ``registry run``) uses when not told."""
    full = inspect.signature(publish_snapshot).parameters.get("full")
    return "incremental" if full is not None and full.default is False else "full"


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _children_cpu_s() -> float:
    """CPU time of the child processes waited for so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_publish(storage: Storage, settings: Settings, day: int, arguments: dict[str, bool]
                  ) -> tuple[PublishResult, dict[str, Any]]:
    """One publication as of ``day``, with its wall and CPU time and each stage's."""
    marks: list[tuple[str, float, float]] = []
    cpu = _cpu_s()
    started = time.perf_counter()
    result = publish_snapshot(storage, settings, as_of=as_of_day(day), **arguments,
                              progress=lambda what, _done, _total: marks.append(
                                  (what, time.perf_counter(), _cpu_s())))
    ended, cpu_ended = time.perf_counter(), _cpu_s()
    stages: dict[str, float] = {}
    stages_cpu: dict[str, float] = {}
    for (what, at, cpu_at), (_, until, cpu_until) in zip(
            marks, [*marks[1:], ("", ended, cpu_ended)], strict=True):
        name = "publish: published" if what.startswith("publish: published ") else what
        stages[name] = round(stages.get(name, 0.0) + until - at, 4)
        stages_cpu[name] = round(stages_cpu.get(name, 0.0) + cpu_until - cpu_at, 3)
    return result, {"publish_s": round(ended - started, 4),
                    "publish_cpu_s": round(cpu_ended - cpu, 3),
                    "build_s": stages.get(BUILD_STAGE),
                    "build_cpu_s": stages_cpu.get(BUILD_STAGE),
                    "stages": stages, "stages_cpu": stages_cpu}


# -- the run with nothing new, against a Prefect server -------------------------------------------


def idle_run(server: PrefectServer, root: Path, day: int) -> dict[str, Any]:
    """``registry run --as-of DAY`` on ``root`` against ``server``, where nothing is waiting to
    be ingested: its wall and CPU time."""
    server.ready()
    cpu = _children_cpu_s()
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "registry"), "run", "--as-of", as_of_day(day).isoformat()], cwd=ROOT,
        env={**server.env, "REGISTRY_STORAGE_URI": root.as_uri()}, capture_output=True,
        text=True, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"registry run failed (exit {done.returncode}):\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return {"idle_run_s": round(seconds, 3),
            "idle_run_cpu_s": round(_children_cpu_s() - cpu, 3)}


# -- the harness -----------------------------------------------------------------------------------


def _idle_days(days: int) -> set[int]:
    return {0, BASELINE_DAY, COMPARE_DAY, days, *range(IDLE_EVERY, days + 1, IDLE_EVERY)}


def _input_batches(storage: Storage, result: PublishResult) -> int:
    return len(json.loads(storage.read_bytes(result.manifest_key))["input_batches"])


def harness(args: argparse.Namespace) -> dict[str, Any]:
    available = publish_modes()
    if args.mode and args.mode not in available:
        raise SystemExit(f"this tree's publish_snapshot has no {args.mode} mode (only "
                         f"{', '.join(available)})")
    modes = [args.mode] if args.mode else list(available)
    idle_mode = None if args.no_idle_run else default_mode()
    if idle_mode not in modes:
        idle_mode = None
    scratch = Path(tempfile.mkdtemp(prefix="bench-history-"))
    roots = {mode: scratch / mode for mode in modes}
    storages = {mode: LocalStorage(root) for mode, root in roots.items()}
    settings = {mode: Settings(_env_file=None, storage_uri=root.as_uri())
                for mode, root in roots.items()}
    history = CouncilHistory(args.merchants, args.seed, Settings(_env_file=None))
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    idle = _idle_days(args.days)
    print(f"{args.days} days, {args.merchants:,} merchants, modes {', '.join(modes)}; runs with "
          f"nothing new: {idle_mode or 'none'}; scratch {scratch}", flush=True)
    server = PrefectServer(scratch / "prefect") if idle_mode else None
    started = time.perf_counter()
    try:
        for day in range(args.days + 1):
            t = time.perf_counter()
            uploads = history.uploads(day)
            generated_s = time.perf_counter() - t
            sent = Counter()
            for upload in uploads:
                sent[upload.dataset] += upload.rows.height
            for mode in (modes if day % 2 else modes[::-1]):
                t = time.perf_counter()
                for landing, upload in enumerate(uploads):
                    stage_upload(storages[mode], upload, history.contracts[upload.dataset],
                                 as_of=as_of_day(day), seed=args.seed, landing=landing)
                staged_s = time.perf_counter() - t
                result, figures = timed_publish(storages[mode], settings[mode], day,
                                                available[mode])
                entry = {"day": day, "as_of": as_of_day(day).isoformat(), **figures,
                         "rows": result.rows, "changes": result.changes,
                         "rows_sent": dict(sent), "uploads": len(uploads),
                         "input_batches": _input_batches(storages[mode], result),
                         "generated_s": round(generated_s, 3), "staged_s": round(staged_s, 3),
                         "load_avg_1m": round(os.getloadavg()[0], 2)}
                if mode == idle_mode and day in idle:
                    entry.update(idle_run(server, roots[mode], day))
                results[mode].append(entry)
                _print_day(mode, entry)
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return _report(args, modes, idle_mode, results, time.perf_counter() - started,
                   server.ready_s if server else None)


def _ratio(later: float | None, earlier: float | None) -> float | None:
    return round(later / earlier, 3) if later is not None and earlier else None


def _median(by_day: dict[int, dict[str, Any]], days: range, key: str) -> float | None:
    values = [by_day[d][key] for d in days
              if d > 0 and d in by_day and by_day[d].get(key) is not None]
    return statistics.median(values) if values else None


def history_summary(days: list[dict[str, Any]]) -> dict[str, Any]:
    """Ratios of later days to the baseline (day 3; day 1 in a run of three days or fewer):
    day 45 and the last day. Targets are judged on day 45 against day 3, and on the slowest
    run with nothing new after the initial load."""
    by_day = {d["day"]: d for d in days}
    last = max(by_day)
    baseline = BASELINE_DAY if last > BASELINE_DAY else 1
    summary: dict[str, Any] = {"baseline_day": baseline, "ratios": {}, "ratios_median3": {}}
    if baseline in by_day:
        base = by_day[baseline]
        for day in sorted({COMPARE_DAY, last} & set(by_day) - {baseline}):
            name = f"day{day}/day{baseline}"
            summary["ratios"][name] = {key: _ratio(by_day[day].get(key), base.get(key))
                                       for key in (*_FIGURES, "idle_run_s", "idle_run_cpu_s")}
            # Steadier on a busy machine: the median of the day and its neighbours (before it,
            # for the later day), when the two windows do not overlap.
            if day - 2 > baseline + 1:
                summary["ratios_median3"][name] = {key: _ratio(
                    _median(by_day, range(day - 2, day + 1), key),
                    _median(by_day, range(baseline - 1, baseline + 2), key))
                    for key in _FIGURES}
    idle_runs = {d["day"]: d["idle_run_s"] for d in days if "idle_run_s" in d}
    summary["idle_run_s"] = idle_runs
    targets = {}
    compared = summary["ratios"].get(f"day{COMPARE_DAY}/day{BASELINE_DAY}")
    if compared is not None:
        targets["build_ratio"] = compared["build_s"]
        targets["publish_ratio"] = compared["publish_s"]
    after_load = [s for day, s in idle_runs.items() if day > 0]
    if after_load:
        targets["idle_run_s"] = max(after_load)
    summary["targets"] = {
        key: {"target": TARGETS[key], "measured": value,
              "met": value is not None and value <= TARGETS[key]}
        for key, value in targets.items()}
    return summary


def _report(args: argparse.Namespace, modes: list[str], idle_mode: str | None,
            results: dict[str, list[dict[str, Any]]], elapsed: float,
            server_ready_s: float | None) -> dict[str, Any]:
    command = f"make bench-history N={args.days} SIZE={args.merchants}"
    if args.mode:
        command += f" (--mode {args.mode})"
    return {
        "benchmark": "history",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command + (" (--no-idle-run)" if args.no_idle_run else ""),
        "days": args.days,
        "merchants": args.merchants,
        "seed": args.seed,
        "modes": modes,
        "modes_available": list(publish_modes()),
        "idle_mode": idle_mode,
        "elapsed_s": round(elapsed, 1),
        "prefect_server_ready_s": server_ready_s,
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(
            psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "polars": pl.__version__, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
            "note": "shared machine: other engineers' work runs alongside; figures are noisy"},
        "results": {mode: {"days": days, "summary": history_summary(days)}
                    for mode, days in results.items()},
    }


def _print_day(mode: str, d: dict[str, Any]) -> None:
    idle = f"{d['idle_run_s']:9.2f}" if "idle_run_s" in d else f"{'':>9}"
    build = f"{d['build_s']:8.2f}" if d["build_s"] is not None else f"{'-':>8}"
    print(f"{d['day']:>4} {d['as_of']} {mode:<12}{d['publish_s']:9.2f}{d['publish_cpu_s']:9.2f}"
          f"{build}{idle}{d['input_batches']:8}{d['rows']['merchants']:>10,}"
          f"{d['load_avg_1m']:7.1f}", flush=True)


def _print_header() -> None:
    print(f"{'day':>4} {'as_of':<10} {'mode':<12}{'publish':>9}{'CPU':>9}{'build':>8}"
          f"{'idle run':>9}{'batches':>8}{'merchants':>10}{'load':>7}", flush=True)


def _print_summary(report: dict[str, Any]) -> None:
    print()
    server = report["prefect_server_ready_s"]
    print(f"{report['days']} days at {report['merchants']:,} merchants in "
          f"{report['elapsed_s']:,.0f} s" + (f" (Prefect server ready after {server} s)"
                                             if server is not None else ""))
    for mode, result in report["results"].items():
        summary = result["summary"]
        for label, kind in (("", "ratios"), (" (medians of 3 days)", "ratios_median3")):
            for name, ratios in summary[kind].items():
                shown = ", ".join(f"{k} {v}" for k, v in ratios.items() if v is not None)
                print(f"{mode}: {name}{label}: {shown}")
        idle = [d for d in result["days"] if "idle_run_s" in d]
        if idle:
            print(f"{mode}: runs with nothing new: " + ", ".join(
                f"day {d['day']} {d['idle_run_s']:.2f} s (CPU {d['idle_run_cpu_s']:.2f} s)"
                for d in idle))
        for key, t in summary["targets"].items():
            print(f"{mode}: target {key}: {t['measured']} vs {t['target']}: "
                  f"{'met' if t['met'] else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--merchants", type=int, default=DEFAULT_MERCHANTS,
                        help="Distinct merchants (USCCs) in the registry, kept all along.")
    parser.add_argument("--mode", choices=("incremental", "full"),
                        help="Only this publication mode (default: every one this tree has).")
    parser.add_argument("--no-idle-run", action="store_true",
                        help="No Prefect server and no run with nothing new.")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, help="Where to write the JSON results.")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch roots.")
    args = parser.parse_args()
    if args.days < 1 or args.merchants < 100:
        parser.error("at least one day and 100 merchants")
    _print_header()
    report = harness(args)
    path = args.out or RESULTS / f"history-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    _print_summary(report)
    print(f"written {path}")


if __name__ == "__main__":
    main()
