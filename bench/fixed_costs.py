"""The fixed costs of the commands a data engineer runs most: whole processes, small inputs.

    make bench-fixed [RUNS=5]      (.venv/bin/python -m bench.fixed_costs --runs N [--out FILE]
                                    [--keep])

Against a running Prefect server (``prefect server start`` on a free loopback port, its own
home and SQLite database, set up by ``registry orchestration setup`` as an operator does), each
case runs ``--runs`` times as a subprocess, from start to exit, the cases interleaved round by
round so that a change of load on the machine touches them all alike:

- ``ingest``: ``registry ingest`` of one 12-row workbook (XLSX with a title row and a notes
  footer, from :mod:`registry.demo.samples`), uploaded with ``registry upload``'s library call
  into a fresh local store (``REGISTRY_STORAGE_URI=file://...``) before each run, so that every
  run stages and gates one new batch;
- ``publish``: ``registry publish`` of a 12-merchant registry: the sample uploads of every
  region and dataset, ingested once and published once beforehand (so each timed run has a
  previous snapshot, as the daily publication does), then published again by each run;
- baselines, measured in the same rounds: ``python -c 'import great_expectations'``,
  ``python -c 'import prefect'``, and ``python -c pass`` (the interpreter alone).

Per case: wall time (median, min) and CPU time of the process and the children it waited for
(median, min; steadier than wall time on a shared machine), and the ratio of the command's
median to each baseline's, in wall and in CPU time. One more run of each command under
``python -X importtime`` lists the time spent in the modules of each heavy package it
imported. The registry's own bytecode is compiled once first, as an installed package's is.

Targets: ``ingest`` and ``publish`` each at most 4 s (median wall time). Writes
``bench/results/fixed-{timestamp}.json`` with the load average before and after, and prints a
table. The machine is shared: compare ratios measured in one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psutil

from bench.prefect_server import PrefectServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
BIN = Path(sys.executable).parent
TARGETS_S = {"ingest": 4.0, "publish": 4.0}
DEFAULT_RUNS = 5
SEED = 20241130
TODAY = date(2026, 11, 30)
WORKBOOK_ROWS = 12
# The 12-merchant registry: every region's uploads of every dataset, split over the regions.
# 15 filings make 12 merchants: some merchants file in a second region too.
REGISTRY_SIZES = {"merchants": 15, "complaints": 24, "inspections": 12, "gift_evaluations": 24}
REGISTRY_MERCHANTS = 12
COMMAND_TIMEOUT_S = 600
# Packages whose import time the -X importtime run reports, when the command imports them.
HEAVY = ("great_expectations", "prefect", "pandas", "pandera", "altair", "vl_convert", "scipy",
         "sqlalchemy", "datacontract", "fastapi", "hypothesis", "boto3", "botocore", "pyarrow",
         "polars", "numpy", "jinja2")
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _children_cpu_s() -> float:
    """CPU time of the child processes waited for so far (and of those they waited for)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- the stores ----------------------------------------------------------------------------------


def _sample_files(folder: Path, sizes: dict[str, int], formats: tuple[str, ...],
                  parts: int) -> list[Any]:
    from registry.config.contracts import load_contracts
    from registry.config.regions import load_regions
    from registry.config.settings import load_settings
    from registry.demo.samples import SampleSizes, write_sample_uploads

    settings = load_settings()
    return write_sample_uploads(
        folder, load_regions(settings.config_dir), load_contracts(settings.schemas_dir),
        SampleSizes(**sizes), seed=SEED, today=TODAY, formats=formats, parts=parts)


def workbook(folder: Path) -> Any:
    """A council's 12-row merchants workbook (XLSX, title row, notes footer): the sample file
    of the first region when every region files 12 merchants in one file."""
    from registry.config.regions import load_regions
    from registry.config.settings import load_settings

    regions = len(load_regions(load_settings().config_dir).regions)
    files = _sample_files(folder, {"merchants": WORKBOOK_ROWS * regions, "complaints": 0,
                                   "inspections": 0, "gift_evaluations": 0}, ("xlsx",), 1)
    sample = files[0]
    if sample.rows != WORKBOOK_ROWS:
        raise SystemExit(f"the sample workbook has {sample.rows} rows, not {WORKBOOK_ROWS}")
    return sample


def _open(root: Path) -> tuple[Any, Any]:
    from registry.config.settings import Settings
    from registry.storage import open_storage

    settings = Settings(_env_file=None, storage_uri=root.as_uri())
    return open_storage(settings), settings


def store_with_upload(root: Path, sample: Any) -> None:
    """A fresh store at ``root`` holding ``sample``, uploaded as ``registry upload`` does."""
    from registry.ingest.pipeline import upload_file

    shutil.rmtree(root, ignore_errors=True)
    storage, settings = _open(root)
    upload_file(storage, settings, sample.path, region=sample.region, dataset=sample.dataset)


def store_with_registry(root: Path, folder: Path) -> dict[str, Any]:
    """A store at ``root`` with the 12-merchant registry's uploads ingested and published once
    (library calls, no Prefect); returns what was staged and published."""
    from registry.ingest.pipeline import ingest_pending, upload_file
    from registry.publish import publish_snapshot

    storage, settings = _open(root)
    files = _sample_files(folder, REGISTRY_SIZES, ("csv", "csv-gb18030", "csv-bom", "xlsx"), 1)
    for sample in files:
        upload_file(storage, settings, sample.path, region=sample.region,
                    dataset=sample.dataset)
    summary = ingest_pending(storage, settings)
    result = publish_snapshot(storage, settings, as_of=TODAY)
    if result.rows["merchants"] != REGISTRY_MERCHANTS:
        raise SystemExit(f"the sample registry has {result.rows['merchants']} merchants, not "
                         f"{REGISTRY_MERCHANTS}: adjust REGISTRY_SIZES")
    return {"uploads": len(files), "statuses": dict(sorted(
        {s: sum(r.status == s for r in summary.results) for s in
         {r.status for r in summary.results}}.items())),
            "rows": result.rows}


def gated_one_batch(root: Path) -> None:
    """Raise unless the store at ``root`` holds exactly one committed batch: the run
    staged the workbook, and the batch gate judged it (released or held)."""
    from registry import ledger

    storage, _ = _open(root)
    records = ledger.batch_records(storage)
    if len(records) != 1 or records[0].status not in ("released", "held"):
        raise SystemExit(f"the ingest did not stage and gate the workbook: {records}")


def _published(stdout: str) -> None:
    if "published snapshot" not in stdout:
        raise SystemExit(f"registry publish published nothing:\n{stdout[-3000:]}")


# -- one run of a case ---------------------------------------------------------------------------


def timed(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    """``command`` as a subprocess, to its exit: wall and CPU seconds. Raises on a failure."""
    cpu = _children_cpu_s()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT_S)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}):\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return {"wall_s": round(wall, 3), "cpu_s": round(_children_cpu_s() - cpu, 3),
            "stdout": done.stdout, "stderr": done.stderr}


def heavy_imports(importtime: str) -> dict[str, float]:
    """Seconds spent importing the modules of each :data:`HEAVY` package (their own time, not
    that of the other packages they import), from the stderr of a ``python -X importtime``
    run; a package the process never imported is left out."""
    seconds: dict[str, float] = {}
    for line in importtime.splitlines():
        match = _IMPORT_LINE.match(line)
        package = match[4].split(".")[0] if match else None
        if package in HEAVY:
            seconds[package] = seconds.get(package, 0.0) + int(match[1]) / 1e6
    return {k: round(v, 3) for k, v in sorted(seconds.items(), key=lambda kv: -kv[1])}


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def harness(args: argparse.Namespace) -> dict[str, Any]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-fixed-", dir=args.scratch))
    python = str(BIN / "python")
    registry = str(BIN / "registry")
    load_before = [round(x, 2) for x in os.getloadavg()]
    print(f"scratch {scratch}; load average {load_before}", flush=True)
    # The tree's own bytecode, compiled once as an installed package's is: where
    # PYTHONDONTWRITEBYTECODE is set, every run would otherwise compile the registry again.
    subprocess.run([python, "-m", "compileall", "-q", "registry", "flows"], cwd=ROOT,
                   check=True, capture_output=True)
    server = PrefectServer(scratch / "prefect")
    try:
        server.ready()
        print(f"prefect server at {server.api_url} (ready in {server.ready_s} s)", flush=True)
        sample = workbook(scratch / "workbook")
        published_root = scratch / "registry-12"
        prepared = store_with_registry(published_root, scratch / "registry-uploads")
        print(f"12-merchant registry: {prepared['uploads']} uploads {prepared['statuses']}, "
              f"published rows {prepared['rows']}", flush=True)
        ingest_root = scratch / "ingest"

        def env_for(root: Path) -> dict[str, str]:
            return {**server.env, "REGISTRY_STORAGE_URI": root.as_uri()}

        cases: dict[str, tuple[list[str], Callable[[], dict[str, str]]]] = {
            "ingest": ([registry, "ingest"], lambda: (
                store_with_upload(ingest_root, sample), env_for(ingest_root))[1]),
            "publish": ([registry, "publish", "--as-of", TODAY.isoformat()],
                        lambda: env_for(published_root)),
            "import great_expectations": ([python, "-c", "import great_expectations"],
                                          lambda: server.env),
            "import prefect": ([python, "-c", "import prefect"], lambda: server.env),
            "python": ([python, "-c", "pass"], lambda: server.env),
        }
        checks = {"ingest": lambda _out: gated_one_batch(ingest_root),
                  "publish": lambda out: _published(out)}
        # One run of each command first, not counted: the first flow run on a new server
        # registers the flow, and the page cache fills.
        warm_up = {}
        for name in TARGETS_S:
            command, prepare = cases[name]
            result = timed(command, prepare())
            checks[name](result["stdout"])
            warm_up[name] = result["wall_s"]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
        for round_ in range(args.runs):
            for name, (command, prepare) in cases.items():
                result = timed(command, prepare())
                runs[name].append({"wall_s": result["wall_s"], "cpu_s": result["cpu_s"],
                                   "load_avg_1m": round(os.getloadavg()[0], 2)})
                if name in checks:
                    checks[name](result["stdout"])
            print(f"  round {round_ + 1}/{args.runs}: " + ", ".join(
                f"{name} {runs[name][-1]['wall_s']:.2f} s" for name in cases), flush=True)
        imports = {}
        for name in TARGETS_S:
            command, prepare = cases[name]
            traced = timed([python, "-X", "importtime", "-m", "registry", *command[1:]],
                           prepare())
            imports[name] = heavy_imports(traced["stderr"])
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    return _report(args, runs, warm_up, imports, prepared, load_before)


def _report(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]],
            warm_up: dict[str, float], imports: dict[str, dict[str, float]],
            prepared: dict[str, Any], load_before: list[float]) -> dict[str, Any]:
    cases = {name: {"wall_s": _stats([r["wall_s"] for r in rs]),
                    "cpu_s": _stats([r["cpu_s"] for r in rs]), "runs": rs}
             for name, rs in runs.items()}
    gx = cases["import great_expectations"]["wall_s"]["median"]
    prefect = cases["import prefect"]["wall_s"]["median"]
    gx_cpu = cases["import great_expectations"]["cpu_s"]["median"]
    prefect_cpu = cases["import prefect"]["cpu_s"]["median"]
    for name in TARGETS_S:
        median = cases[name]["wall_s"]["median"]
        cpu = cases[name]["cpu_s"]["median"]
        cases[name].update(
            warm_up_wall_s=warm_up[name], imports_s=imports[name],
            x_import_great_expectations=round(median / gx, 2),
            x_import_prefect=round(median / prefect, 2),
            cpu_x_import_great_expectations=round(cpu / gx_cpu, 2),
            cpu_x_import_prefect=round(cpu / prefect_cpu, 2))
    return {
        "benchmark": "fixed_costs",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": f"make bench-fixed RUNS={args.runs}",
        "runs": args.runs,
        "workbook_rows": WORKBOOK_ROWS,
        "registry": {"sizes": REGISTRY_SIZES, **prepared},
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(
            psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "load_avg_before": load_before,
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
            "bytecode": "registry/ and flows/ compiled once before the runs",
            "note": "shared machine: other engineers' work runs alongside; figures are noisy"},
        "cases": cases,
        "targets": {name: {"target_s": target, "measured_s": cases[name]["wall_s"]["median"],
                           "met": cases[name]["wall_s"]["median"] <= target}
                    for name, target in TARGETS_S.items()},
    }


def _print_table(report: dict[str, Any]) -> None:
    print()
    print(f"{'case':<28}{'median s':>10}{'min s':>8}{'CPU med':>9}{'CPU min':>9}"
          f"{'x GX':>7}{'x Prefect':>10}{'CPU x GX':>10}")
    for name, case in report["cases"].items():
        wall, cpu = case["wall_s"], case["cpu_s"]
        ratios = (f"{case['x_import_great_expectations']:>7.2f}{case['x_import_prefect']:>10.2f}"
                  f"{case['cpu_x_import_great_expectations']:>10.2f}"
                  if name in TARGETS_S else "")
        print(f"{name:<28}{wall['median']:>10.2f}{wall['min']:>8.2f}{cpu['median']:>9.2f}"
              f"{cpu['min']:>9.2f}{ratios}")
    for name in TARGETS_S:
        heavy = report["cases"][name]["imports_s"]
        print(f"{name} imported: " + (", ".join(f"{k} {v:.2f} s" for k, v in heavy.items())
                                      or "none of " + ", ".join(HEAVY)))
    for name, t in report["targets"].items():
        print(f"target {name}: {t['measured_s']:.2f} s vs {t['target_s']:.0f} s: "
              f"{'met' if t['met'] else 'MISSED'}")
    m = report["machine"]
    print(f"load average before {m['load_avg_before']}, at end {m['load_avg_at_end']} "
          f"({m['cpus']} CPUs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                        help="Timed runs of each case (after one warm-up run of each command).")
    parser.add_argument("--out", type=Path, default=None, help="Write the results here.")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folder.")
    parser.add_argument("--scratch", default=None, help="Folder for the scratch folder.")
    args = parser.parse_args()
    report = harness(args)
    out = args.out or RESULTS / f"fixed-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    _print_table(report)
    print(f"written {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
