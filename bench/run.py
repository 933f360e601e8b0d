"""The benchmark harness: one tier, every stage, in one go.

    make bench TIER=S|M|L        (.venv/bin/python -m bench.run --tier S)

Stages, each in a fresh subprocess (so that peak memory is the stage's own, and Prefect starts
as it does for a user), on the tier's cached uploads (:mod:`bench.generate`):

- ``floor``: polars reads every upload (GB18030 decoded, the title row skipped) and writes it
  once as Parquet: the physical floor of the job;
- ``pipeline-flow``: ``flows.pipeline.pipeline_flow`` on a fresh local root, as ``registry run``
  runs it (``registry.cli.common.command_flow_runs``: Prefect's temporary server started with
  the stage, no flow heartbeats; the thread-pool task runner): this is the pipeline that is
  measured, split into ingest and publish where publication starts;
- ``ingest-lib`` / ``publish-lib``: the same library functions without Prefect
  (``registry.ingest.pipeline.ingest_pending``, ``registry.publish.publish_snapshot``) on
  another root,
  in two processes; the difference to the flow run is the share taken by Prefect (tier L skips
  them unless ``--library``: they would double its hours);
- ``reference`` (tier S only, unless ``--reference``): :mod:`bench.reference`.

Great Expectations' share is timed inside the stages, around the functions of
``registry.quality`` that run it (whichever exist in this tree), on the library runs (there
the calls do not overlap, so their sum is wall time). Peak memory is the largest sum of RSS over
a stage's process tree (the process and, for flows, Prefect's server subprocess), sampled every
50 ms with psutil.

Writes ``bench/results/{tier}-{timestamp}.json`` and prints a table. Timings on a shared
machine are noisy: compare ratios measured in the same run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import psutil

from bench.generate import BENCH_TODAY, TIERS, tier_files, upload_limit_bytes
from registry.demo.samples import DEFAULT_SEED, SampleFile

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
TARGETS = {"S": {"speedup_vs_reference": 10.0, "pipeline_gx_share": 0.20},
           "M": {"ratio": 8.0, "peak_rss_mb": 3072, "pipeline_gx_share": 0.20},
           "L": {"completed": True, "peak_rss_mb": 8192}}
# Tier L runs the pipeline once, through the flow (the library runs would double its hours), and
# stops a stage whose process tree passes this: the machine is shared.
L_DEFAULT_RSS_LIMIT_MB = 13000
_RESULT_TAG = "BENCH-STAGE-RESULT "
# Functions that run Great Expectations, timed when the tree has them.
_GX_FUNCTIONS = ("registry.quality.runner:suite_result",
                 "registry.quality.runner:load_great_expectations",
                 "registry.quality.data_docs:upload_data_docs",
                 "registry.quality:suite_result", "registry.quality:upload_data_docs")


# -- inside a stage subprocess ------------------------------------------------------------------


class _GxCalls:
    """The wall-time intervals spent in the functions that run Great Expectations (their
    import included), gathered from every thread of a stage."""

    def __init__(self) -> None:
        self.intervals: list[tuple[float, float]] = []
        self.by_function: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, function: str, started: float, ended: float) -> None:
        with self._lock:
            self.intervals.append((started, ended))
            self.by_function[function] += ended - started

    def result(self) -> dict[str, Any]:
        """``gx_s``: the wall time during which at least one of them ran (the union of the
        intervals). In the ingest flow, uploads are gated in threads that wait for one another
        (``ONE_RUN_AT_A_TIME``) and the GX import overlaps the Prefect server's start: a sum
        of the calls' times would count the waits twice, the union counts every second of GX
        once, waiting included, and nothing else."""
        union, reach = 0.0, float("-inf")
        for started, ended in sorted(self.intervals):
            if ended > reach:
                union += ended - max(started, reach)
                reach = ended
        return {"gx_s": union, "gx_calls": len(self.intervals),
                "gx_by_function": {k: round(v, 3) for k, v in self.by_function.items()}}


def _time_gx_calls() -> _GxCalls:
    """Wrap the functions that run Great Expectations so that their time adds up in the
    result."""
    import importlib

    calls = _GxCalls()
    for target in _GX_FUNCTIONS:
        module_name, name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        original = getattr(module, name, None)
        if original is None:
            continue

        def timed(*args: Any, _original=original, _name=name, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                calls.add(_name, started, time.perf_counter())

        setattr(module, name, timed)
    return calls


def _floor(files: list[SampleFile], work: Path) -> dict[str, Any]:
    rows = 0
    for i, sample in enumerate(files):
        data = sample.path.read_bytes()
        skip = 0
        if sample.format == "csv-gb18030":
            data, skip = data.decode("gb18030").encode("utf-8"), 1
        frame = pl.read_csv(io.BytesIO(data), infer_schema=False, skip_rows=skip,
                            separator=";" if sample.format == "csv-bom" else ",")
        frame.write_parquet(work / f"{i}.parquet")
        rows += frame.height
    return {"rows": rows}


def _ingested(summary: Any) -> dict[str, Any]:
    results = summary.results
    return {"uploads": len(results),
            "statuses": dict(Counter(r.status for r in results)),
            "rows": sum(r.rows_in for r in results),
            "accepted": sum(r.accepted for r in results),
            "quarantined": sum(r.quarantined for r in results),
            "held": sum(bool(getattr(r, "held", False)) for r in results)}


def _published(result: Any) -> dict[str, Any]:
    return {"snapshot_id": result.snapshot_id, "published_rows": result.rows,
            "trusted_by_grade": result.trusted_by_grade}


def _stage(name: str, tier: str, seed: int, work: Path) -> dict[str, Any]:
    files = tier_files(tier, seed, log=lambda *_: None)
    gx = _time_gx_calls()
    started = time.perf_counter()
    if name == "floor":
        out = _floor(files, work)
    elif name == "reference":
        from bench.reference import reference_ingest

        out = reference_ingest(files, work, today=BENCH_TODAY)
    elif name == "pipeline-flow":
        from registry.cli.common import command_flow_runs

        publish_started: list[float] = []

        def progress(description: str, _done: int, _total: int) -> None:
            if description.startswith("publish") and not publish_started:
                publish_started.append(time.perf_counter())

        with command_flow_runs():
            from flows.pipeline import pipeline_flow

            outcome = pipeline_flow(as_of=BENCH_TODAY, progress=progress)
            ended = time.perf_counter()
        out = {**_ingested(outcome["ingest"]), **_published(outcome["publish"]),
               "ingest_s": publish_started[0] - started, "publish_s": ended - publish_started[0]}
    elif name == "ingest-lib":
        from registry.config.settings import load_settings
        from registry.ingest.pipeline import ingest_pending
        from registry.storage import open_storage

        settings = load_settings()
        out = _ingested(ingest_pending(open_storage(settings), settings))
    elif name == "publish-lib":
        from registry.config.settings import load_settings
        from registry.publish import publish_snapshot
        from registry.storage import open_storage

        settings = load_settings()
        out = _published(publish_snapshot(open_storage(settings), settings, as_of=BENCH_TODAY))
    else:
        raise ValueError(f"unknown stage {name!r}")
    return {"seconds": time.perf_counter() - started, **gx.result(), **out}


# -- the harness -------------------------------------------------------------------------------


class _PeakRss:
    """Largest sum of RSS over a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.05, limit: int | None = None):
        self.peak = 0
        self.killed = False
        self._limit = limit
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            try:
                tree = [self._process, *self._process.children(recursive=True)]
                total = 0
                for p in tree:
                    with contextlib.suppress(psutil.Error):
                        total += p.memory_info().rss
                self.peak = max(self.peak, total)
                if self._limit is not None and total > self._limit:
                    # Over the memory limit: stop the stage before the machine (shared with
                    # others) starts swapping or its OOM killer picks someone else.
                    self.killed = True
                    for p in reversed(tree):
                        with contextlib.suppress(psutil.Error):
                            p.kill()
                    return
            except psutil.Error:
                return
            self._stop.wait(every)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _run_stage(name: str, args: argparse.Namespace, work: Path, env: dict[str, str]
               ) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bench.run", "--stage", name, "--tier", args.tier,
               "--seed", str(args.seed), "--work", str(work)]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    limit = args.rss_limit_mb * 2**20 if args.rss_limit_mb else None
    sampler = _PeakRss(child.pid, limit=limit)
    stdout, stderr = child.communicate()
    peak = sampler.stop()
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    if sampler.killed:
        print(f"  {name:<13} KILLED at {peak / 2**20:,.0f} MB (limit {args.rss_limit_mb:,} MB) "
              f"after {wall:,.0f} s", flush=True)
        return {"seconds": wall, "killed": True, "rss_limit_mb": args.rss_limit_mb,
                "process_cpu_s": round(cpu, 3), "peak_rss_mb": round(peak / 2**20, 1),
                "log_tail": stderr[-2000:]}
    if child.returncode != 0:
        sys.stderr.write(stderr[-5000:])
        raise SystemExit(f"stage {name} failed (exit {child.returncode})")
    line = next(x for x in reversed(stdout.splitlines()) if x.startswith(_RESULT_TAG))
    result = json.loads(line[len(_RESULT_TAG):])
    result.update(process_s=round(wall, 3), process_cpu_s=round(cpu, 3),
                  peak_rss_mb=round(peak / 2**20, 1))
    print(f"  {name:<13} {result['seconds']:8.2f} s   CPU {cpu:8.2f} s   peak RSS "
          f"{result['peak_rss_mb']:8.0f} MB", flush=True)
    return result


def _upload(files: list[SampleFile], root: Path) -> None:
    """What the councils do before the pipeline runs: put the files into landing/."""
    from registry.storage import LocalStorage

    storage = LocalStorage(root)
    for sample in files:
        key = f"landing/{sample.region}/{sample.dataset}/{sample.path.name}"
        target = storage.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(sample.path, target)
        storage.head(key)


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 3) if whole > 0 else None


def harness(args: argparse.Namespace) -> dict[str, Any]:
    files = tier_files(args.tier, args.seed)
    scratch = Path(tempfile.mkdtemp(prefix=f"bench-{args.tier}-", dir=args.scratch))
    prefect_home = HERE / "data" / "prefect-home"
    env = {**os.environ, "PREFECT_HOME": str(prefect_home), "CI": "true",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "WARNING",
           # On a busy shared machine the embedded server can take longer than the default 20 s.
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
           "REGISTRY_MAX_UPLOAD_BYTES": str(upload_limit_bytes(files)),
           "PYTHONPATH": str(ROOT)}
    env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    bytes_in = sum(f.path.stat().st_size for f in files)
    print(f"tier {args.tier}: {len(files)} uploads, {sum(f.rows for f in files):,} rows, "
          f"{bytes_in / 1e6:,.0f} MB of CSV; scratch {scratch}", flush=True)
    # Prefect's database is created once, outside the measurements.
    warm = "from prefect import flow\n@flow\ndef warm(): pass\nwarm()"
    subprocess.run([sys.executable, "-c", warm], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    stages: dict[str, dict[str, Any]] = {}
    try:
        stages["floor"] = _run_stage("floor", args, scratch / "floor", env)
        shutil.rmtree(scratch / "floor", ignore_errors=True)
        # The pipeline as `registry run` runs it, then the same library functions without
        # Prefect, each on a fresh root holding the same uploads.
        runs = [("flow", ("pipeline-flow",))]
        if not args.no_library:
            runs.append(("lib", ("ingest-lib", "publish-lib")))
        for via, steps in runs:
            root = scratch / f"root-{via}"
            _upload(files, root)
            for step in steps:
                stages[step] = _run_stage(step, args, scratch / step,
                                          {**env, "REGISTRY_STORAGE_URI": root.as_uri()})
            if not args.keep:
                shutil.rmtree(root, ignore_errors=True)
        if args.reference or (args.tier == "S" and not args.no_reference):
            stages["reference"] = _run_stage("reference", args, scratch / "reference", env)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return _report(args, files, bytes_in, stages)


def _report(args: argparse.Namespace, files: list[SampleFile], bytes_in: int,
            stages: dict[str, dict[str, Any]]) -> dict[str, Any]:
    s = {k: v["seconds"] for k, v in stages.items()}
    floor_s = s["floor"]
    flow = stages["pipeline-flow"]
    completed = not flow.get("killed")
    pipeline_s = s["pipeline-flow"] if completed else None
    library = "ingest-lib" in stages
    library_s = s["ingest-lib"] + s["publish-lib"] if library else None
    gx_s = stages["ingest-lib"]["gx_s"] + stages["publish-lib"]["gx_s"] if library else None
    cpu = {k: v["process_cpu_s"] for k, v in stages.items()}
    expected = sum(f.rejected for f in files)

    def rounded(value: float | None, digits: int = 3) -> float | None:
        return None if value is None else round(value, digits)

    report: dict[str, Any] = {
        "tier": args.tier,
        "seed": args.seed,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"make bench TIER={args.tier}" + (" (--no-library)" if not library else ""),
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(
            psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "polars": pl.__version__, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
            "note": "shared machine: other engineers' work runs alongside; figures are noisy"},
        "files": len(files),
        "bytes_in": bytes_in,
        "rows_in": sum(f.rows for f in files),
        "rows_to_reject": expected,
        "completed": completed,
        "rows_rejected": flow.get("quarantined"),
        "rejections_as_planted": flow.get("quarantined") == expected,
        "floor_s": round(floor_s, 3),
        "ingest_s": rounded(flow.get("ingest_s")),
        "publish_s": rounded(flow.get("publish_s")),
        "pipeline_s": rounded(pipeline_s),
        "ratio": rounded(pipeline_s / floor_s if completed else None, 2),
        # CPU seconds of each stage's process tree: steadier than wall time on a busy machine.
        "floor_cpu_s": cpu["floor"],
        "pipeline_cpu_s": cpu["pipeline-flow"] if completed else None,
        "cpu_ratio": rounded(cpu["pipeline-flow"] / cpu["floor"] if completed else None, 2),
        "library_s": rounded(library_s),
        "library_ratio": rounded(library_s / floor_s if library else None, 2),
        "prefect_s": rounded(pipeline_s - library_s if library and completed else None),
        "prefect_share": _share(pipeline_s - library_s, pipeline_s)
        if library and completed else None,
        # Great Expectations in the pipeline (the flow, one process) and in the library run
        # (two processes, each importing it): wall seconds during which it ran.
        "pipeline_gx_s": rounded(flow["gx_s"] if completed else None),
        "pipeline_gx_share": _share(flow["gx_s"], pipeline_s) if completed else None,
        "gx_s": rounded(gx_s),
        "gx_share": _share(gx_s, library_s) if library else None,
        "gx_wired": (stages["ingest-lib"]["gx_calls"] + stages["publish-lib"]["gx_calls"] > 0)
        if library else None,
        "peak_rss_mb": max(v["peak_rss_mb"] for k, v in stages.items() if k != "reference"),
        "max_single_process_rss_mb": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "stages": {k: {kk: (round(vv, 3) if isinstance(vv, float) else vv)
                       for kk, vv in v.items()} for k, v in stages.items()},
    }
    if "reference" in stages:
        ref = stages["reference"]
        report.update(
            reference_s=round(ref["seconds"], 3),
            reference_rows_rejected=ref["rejected"],
            reference_gx_s=round(ref["gx_s"], 3),
            speedup_vs_reference=round(ref["seconds"] / report["ingest_s"], 2),
            speedup_pipeline_vs_reference=round(ref["seconds"] / pipeline_s, 2),
        )
    report["targets"] = {
        key: {"target": target, "measured": report.get(key), "met": _met(key, target, report)}
        for key, target in TARGETS[args.tier].items()
    }
    return report


def _met(key: str, target: Any, report: dict[str, Any]) -> bool:
    measured = report.get(key)
    if key == "completed":
        return measured is target
    if not report["completed"] or measured is None:
        return False
    return measured >= target if key.startswith("speedup") else measured <= target


def _print_table(report: dict[str, Any]) -> None:
    st = report["stages"]
    print()
    print(f"tier {report['tier']}: {report['rows_in']:,} rows in {report['files']} uploads "
          f"({report['bytes_in'] / 1e6:,.0f} MB)")
    print(f"{'stage':<14}{'seconds':>10}{'x floor':>9}{'CPU s':>9}{'peak RSS MB':>13}"
          f"{'GX s':>8}")
    for name, stage in st.items():
        gx = f"{stage['gx_s']:>8.2f}" if "gx_s" in stage else f"{'-':>8}"
        print(f"{name:<14}{stage['seconds']:>10.2f}{stage['seconds'] / report['floor_s']:>9.2f}"
              f"{stage['process_cpu_s']:>9.2f}{stage['peak_rss_mb']:>13.0f}{gx}")
    if not report["completed"]:
        print(f"pipeline did NOT complete: killed over {st['pipeline-flow']['rss_limit_mb']:,} MB")
    else:
        print(f"pipeline (registry run's flow): {report['pipeline_s']:.2f} s = "
              f"{report['ratio']:.2f} x floor (ingest {report['ingest_s']:.2f} s, publish "
              f"{report['publish_s']:.2f} s); CPU {report['cpu_ratio']:.2f} x; Great "
              f"Expectations {report['pipeline_gx_s']:.2f} s ({report['pipeline_gx_share']:.0%})")
    if report["library_s"] is not None and report["completed"]:
        print(f"without Prefect {report['library_ratio']:.2f} x floor; Prefect orchestration: "
              f"{report['prefect_s']:.2f} s ({report['prefect_share']:.0%}); Great "
              f"Expectations: {report['gx_s']:.2f} s ({report['gx_share']:.0%} of the library "
              f"run){'' if report['gx_wired'] else ' (not wired in this tree)'}")
    if report["rows_rejected"] is not None:
        print(f"rows rejected {report['rows_rejected']:,} (planted "
              f"{report['rows_to_reject']:,})")
    print(f"peak RSS {report['peak_rss_mb']:,.0f} MB")
    if "reference_s" in report:
        print(f"reference pipeline: {report['reference_s']:.2f} s; ingest is "
              f"{report['speedup_vs_reference']:.1f} x faster, the whole pipeline "
              f"{report['speedup_pipeline_vs_reference']:.1f} x "
              f"(reference rejected {report['reference_rows_rejected']:,})")
    for key, t in report["targets"].items():
        print(f"target {key}: {t['measured']} vs {t['target']}: "
              f"{'met' if t['met'] else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=sorted(TIERS), default="S")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--reference", action="store_true", help="Also on tiers M and L.")
    parser.add_argument("--no-reference", action="store_true", help="Not even on tier S.")
    parser.add_argument("--no-library", action="store_true",
                        help="Skip the runs without Prefect (no Prefect or GX share); the "
                             "default on tier L.")
    parser.add_argument("--library", action="store_true",
                        help="Run them on tier L as well.")
    parser.add_argument("--rss-limit-mb", type=int, default=None,
                        help="Kill a stage whose process tree grows past this (tier L: "
                             f"{L_DEFAULT_RSS_LIMIT_MB:,} unless given).")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch roots.")
    parser.add_argument("--scratch", default=None, help="Folder for scratch roots.")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tier == "L":
        args.no_library = args.no_library or not args.library
        if args.rss_limit_mb is None:
            args.rss_limit_mb = L_DEFAULT_RSS_LIMIT_MB
    if args.stage:
        result = _stage(args.stage, args.tier, args.seed, Path(args.work))
        print(_RESULT_TAG + json.dumps(result, default=str), flush=True)
        return
    report = harness(args)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{args.tier}-{stamp}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    _print_table(report)
    print(f"written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
