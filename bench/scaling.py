"""How the merchants and products build spreads over USCC ranges and over a Dask cluster.

    make bench-scaling [SCALE_MERCHANTS=800000] [KS=2,4,8]
        (.venv/bin/python -m bench.scaling --merchants N [--ks 2,4,8] [--workers 2]
         [--small-row-groups ROWS] [--seed S] [--out FILE])

The registry: the initial load of :mod:`bench.history_data` for ``--merchants`` distinct USCCs
(800,000 give about 860,000 filings, 3.4 million complaints, 340,000 inspections and 215,000
gift evaluations in the four regions), each upload staged and committed through
:func:`registry.ledger.commit_batch`, then one ``snapshot_tables(..., full=True)`` that writes
the compacted current state (:mod:`registry.publish.state`, one sorted Parquet file per dataset
and region). It is cached under ``bench/data/`` and reused.

Measured, each configuration in a fresh process (so that peak RSS is its own):

- ``whole``: :func:`registry.build.tables.registry_tables` over
  :func:`~registry.publish.state.state_inputs` of the whole state, merchants and products
  collected, in one process with polars on every core, and again on one thread;
- ``sequential``: the same state cut into K USCC ranges of about equal row counts, each range
  built in turn in one process (``state_inputs(..., uscc_range=...)``);
- ``dask``: the K ranges as Prefect tasks on prefect-dask's ``DaskTaskRunner``, the runner the
  ingest flow's settings give (``flows.ingest.ingest_task_runner`` with ``task_runner=dask``),
  on a ``LocalCluster`` of ``--workers`` processes of one thread each. Each task writes its
  range's merchants and products to the store and returns its figures; the flow's process
  reads the parts back.

Every configuration ends with the same serial step (``combine``): the ranges' tables
concatenated in USCC order, the products' ``rank_in_category`` taken again over all ranges
(it ranks across every merchant), the complaints summary (a global aggregate, built from the
whole state), the changes and listing dates, and the four tables serialised as the publisher
writes them. Its output is checked byte for byte against the whole build's, and its merchants
row by row; the whole build runs again at the end, in another process, as the control.

Per range: wall and CPU time, bytes passed to read() (``/proc/self/io`` rchar: polars reads
local Parquet with pread), the row groups whose USCC statistics overlap the range, peak RSS of
the process (per Dask worker). Fixed costs: a range that holds no USCC (footers, planning, an
empty build), reading every partition's footer, a no-op Prefect task on the cluster, the
combine's steps. The state's files are written without min/max statistics
(``registry.storage.base.PARQUET_WRITE``), so no scan can skip a row group by USCC; with
``--small-row-groups``, the sequential runs are repeated on a copy of the state whose files
carry min/max statistics and hold that many rows per row group: what a range then skips.

Writes ``bench/results/scaling-{timestamp}.json`` and prints a table. A shared machine is
noisy: figures are given as ratios to the whole build, in wall time and in CPU time (steadier).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import pyarrow.parquet as pq

from bench.history_data import CouncilHistory, as_of_day, stage_upload
from registry.build.changes import merchants_dated
from registry.build.columns import MERCHANT_COLUMNS
from registry.build.tables import registry_tables
from registry.config.contracts import load_contracts, natural_keys
from registry.config.published import load_published_contracts
from registry.config.regions import load_regions
from registry.config.score_model import load_score_model
from registry.config.settings import Settings
from registry.publish.state import StatePointer, UsccRange, read_pointer, state_inputs
from registry.publish.tables import TABLE_ORDER, parquet_bytes, snapshot_tables
from registry.snapshot.delta import merchant_changes
from registry.storage import LocalStorage

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = HERE / "data"
RESULTS = HERE / "results"
DEFAULT_MERCHANTS = 800_000
DEFAULT_SEED = 20241130
DEFAULT_KS = (2, 4, 8)
DEFAULT_WORKERS = 2
DEFAULT_SMALL_ROW_GROUPS = 65_536
# The initial load is published as of its own day.
AS_OF = as_of_day(0)
# A range below every USCC (they start with a digit or a capital letter): its build reads the
# footers, plans and runs on no rows, the fixed cost of one range.
EMPTY_RANGE = ("!", "!")
DATA_VERSION = 1
CHILD_TIMEOUT_S = 4 * 3600


# -- the registry's state -------------------------------------------------------------------------


def prepared_state(merchants: int, seed: int, data: Path = DATA) -> Path:
    """The root of a local store under ``data`` holding the initial load for ``merchants``
    USCCs, committed batch by batch, and the current state one full publication build wrote;
    made once."""
    root = data / f"scaling-{merchants}-seed{seed}-v{DATA_VERSION}"
    if (root / "prepared.json").exists():
        return root
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    storage = LocalStorage(partial)
    settings = Settings(_env_file=None, storage_uri=storage.root_uri)
    started = time.perf_counter()
    history = CouncilHistory(merchants, seed, settings)
    uploads = history.uploads(0)
    rows: dict[str, int] = {}
    for landing, upload in enumerate(uploads):
        stage_upload(storage, upload, history.contracts[upload.dataset], as_of=AS_OF, seed=seed,
                     landing=landing)
        rows[upload.dataset] = rows.get(upload.dataset, 0) + upload.rows.height
    staged_s = time.perf_counter() - started
    built = snapshot_tables(storage, settings, AS_OF, None, full=True)
    facts = {"merchants": merchants, "seed": seed, "as_of": AS_OF.isoformat(),
             "staged_rows": rows, "batches": len(uploads),
             "published_rows": {name: frame.height for name, frame in built.tables.items()},
             "staged_s": round(staged_s, 1),
             "state_build_s": round(time.perf_counter() - started - staged_s, 1)}
    (partial / "prepared.json").write_text(json.dumps(facts, indent=2))
    partial.rename(root)
    return root


def _pointer(storage: LocalStorage) -> StatePointer:
    found = read_pointer(storage)
    if found is None:
        raise SystemExit(f"{storage.root}: no current state")
    return found[0]


def state_layout(root: Path) -> list[dict[str, Any]]:
    """Each partition file of the state: its rows, bytes, footer bytes, and per row group the
    rows, compressed bytes and USCC statistics."""
    storage = LocalStorage(root)
    files = []
    for part in _pointer(storage).partitions:
        path = root / part.key
        meta = pq.ParquetFile(path).metadata
        uscc = meta.schema.to_arrow_schema().get_field_index("uscc")
        groups = []
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            stats = group.column(uscc).statistics
            groups.append({"rows": group.num_rows, "bytes": group.total_byte_size,
                           "compressed": sum(group.column(c).total_compressed_size
                                             for c in range(group.num_columns)),
                           "min": stats.min, "max": stats.max})
        files.append({"key": part.key, "dataset": part.dataset, "region": part.region,
                      "rows": meta.num_rows, "bytes": path.stat().st_size,
                      "footer_bytes": meta.serialized_size, "row_groups": groups})
    return files


def uscc_ranges(root: Path, k: int) -> list[tuple[str, str]]:
    """``k`` contiguous USCC ranges, (first, last) inclusive, holding about as many rows of the
    state each (every dataset's rows count), from the USCC column of every partition file."""
    storage = LocalStorage(root)
    keys = [str(root / part.key) for part in _pointer(storage).partitions]
    codes = pl.concat([pl.scan_parquet(key).select("uscc") for key in keys])
    counts = codes.drop_nulls().group_by("uscc").len().sort("uscc").collect()
    codes = counts.get_column("uscc")
    cumulative = counts.get_column("len").cum_sum()
    total = cumulative[-1]
    starts = [0] + [int(cumulative.search_sorted(total * i / k, side="right"))
                    for i in range(1, k)]
    ends = [*starts[1:], codes.len()]
    return [(codes[a], codes[b - 1]) for a, b in zip(starts, ends, strict=True) if b > a]


def ranges_by_statistics(layout: list[dict[str, Any]], bounds: tuple[str, str] | None
                         ) -> dict[str, int]:
    """The row groups (and their compressed bytes) whose USCC statistics overlap ``bounds``:
    what a scan of the range cannot skip."""
    groups = [g for f in layout for g in f["row_groups"]]
    kept = [g for g in groups if g["rows"] and (
        bounds is None or g["min"] is None  # no statistics: nothing can be skipped
        or (g["max"] >= bounds[0] and g["min"] <= bounds[1]))]
    return {"row_groups": len(kept), "row_groups_total": len(groups),
            "compressed_bytes": sum(g["compressed"] for g in kept)}


def with_row_groups(root: Path, rows: int) -> Path:
    """A copy of the store at ``root`` (pointer and state only) whose state files carry min/max
    statistics and hold ``rows`` rows per row group: the same rows in the same order."""
    copy = root.with_name(f"{root.name}-rg{rows}")
    if (copy / "copied").exists():
        return copy
    shutil.rmtree(copy, ignore_errors=True)
    storage = LocalStorage(root)
    for key in ("state/current.json",):
        target = copy / key
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / key, target)
    for part in _pointer(storage).partitions:
        target = copy / part.key
        target.parent.mkdir(parents=True, exist_ok=True)
        pl.read_parquet(root / part.key).write_parquet(
            target, compression="zstd", statistics=True, row_group_size=rows)
    (copy / "copied").write_text("")
    return copy


# -- one process's figures ------------------------------------------------------------------------


def _rchar() -> int:
    """Bytes this process has passed to read() and pread() (local Parquet reads included)."""
    with open("/proc/self/io") as io:
        for line in io:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    """This process's peak resident memory since it started its program (VmHWM: getrusage's
    ru_maxrss would include the parent's peak at the fork)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmHWM in /proc/self/status")


class _Clock:
    """Wall time, CPU time and bytes read of named steps."""

    def __init__(self) -> None:
        self.steps: dict[str, dict[str, float]] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        wall, cpu, read = time.perf_counter(), _cpu_s(), _rchar()
        yield
        self.steps[name] = {"s": round(time.perf_counter() - wall, 3),
                            "cpu_s": round(_cpu_s() - cpu, 3), "read_bytes": _rchar() - read}


class _Registry:
    """The configuration a build needs, loaded once per process."""

    def __init__(self) -> None:
        settings = Settings(_env_file=None)
        self.model = load_score_model(settings.config_dir, settings.score_model_version).model
        self.keys = natural_keys(load_contracts(settings.schemas_dir))
        self.divisions = load_regions(settings.config_dir).division_regions
        self.cutoff = AS_OF - timedelta(days=self.model.window_days)


def range_tables(root: str, bounds: tuple[str, str] | None, registry: _Registry | None = None
                 ) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """The merchants and products of the USCCs in ``bounds`` (all when None), built from the
    state at ``root``, with the build's figures."""
    clock = _Clock()
    wall, cpu, read = time.perf_counter(), _cpu_s(), _rchar()
    with clock.step("config"):
        registry = registry or _Registry()
    storage = LocalStorage(root)
    with clock.step("pointer"):
        pointer = _pointer(storage)
    with clock.step("plan"):
        # Inclusive bounds: no code lies between ``last`` and ``last + "\0"``.
        codes = None if bounds is None else UsccRange(bounds[0], bounds[1] + "\0")
        built = registry_tables(state_inputs(storage, pointer, registry.cutoff,
                                             uscc_range=codes),
                                AS_OF, registry.model, registry.divisions, registry.keys)
    with clock.step("collect"):
        merchants, products = pl.collect_all([built.merchants, built.products])
    figures = {"bounds": bounds, "s": round(time.perf_counter() - wall, 3),
               "cpu_s": round(_cpu_s() - cpu, 3), "read_bytes": _rchar() - read,
               "merchants": merchants.height, "products": products.height,
               "steps": clock.steps, "pid": os.getpid(), "peak_rss_mb": _peak_rss_mb()}
    return merchants, products, figures


def products_ranked(products: pl.DataFrame) -> pl.DataFrame:
    """The products of every range, ranked again within category and round across all of them
    (``rank_in_category`` of one range ranks only its own merchants' products), in the order
    :func:`registry.build.products.gift_products` gives. ``overall`` is already rounded to what
    is published, which is what the rank is taken on."""
    return products.with_columns(
        pl.col("overall").rank("min", descending=True).over("category", "evaluation_round")
        .cast(pl.Int64).alias("rank_in_category")
    ).sort("evaluation_round", "category", "rank_in_category", "region", "product_id")


def combined(root: str, merchant_parts: Sequence[pl.DataFrame],
             product_parts: Sequence[pl.DataFrame], registry: _Registry,
             merchants_out: str | None = None) -> dict[str, Any]:
    """The serial end of every configuration: the four published tables from the ranges'
    outputs (in USCC order) and the whole state's complaints, serialised; figures per step and
    the tables' sha256. The merchants table is also written to ``merchants_out``, when given,
    to be compared row by row with another configuration's."""
    clock = _Clock()
    with clock.step("concat"):
        merchants = pl.concat(merchant_parts, rechunk=False)
        unranked = pl.concat(product_parts).sort(
            "evaluation_round", "category", "rank_in_category", "region", "product_id")
    with clock.step("rank_products"):
        products = products_ranked(unranked)
    storage = LocalStorage(root)
    with clock.step("complaints_summary"):
        whole = registry_tables(state_inputs(storage, _pointer(storage), registry.cutoff),
                                AS_OF, registry.model, registry.divisions, registry.keys)
        summary = whole.complaints_summary.collect()
    with clock.step("changes"):
        changes = merchant_changes(None, merchants)
        dated = merchants_dated(merchants, None, changes, AS_OF).select(MERCHANT_COLUMNS)
    contracts = load_published_contracts()
    tables = {"merchants": dated, "products": products, "changes": changes,
              "complaints_summary": summary}
    with clock.step("serialise"):
        files = {name: parquet_bytes(tables[name], contracts[name]) for name in TABLE_ORDER}
    digest = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    if merchants_out:
        dated.write_parquet(merchants_out)
    unranked_file = parquet_bytes(unranked, contracts["products"])
    return {"steps": clock.steps, "s": round(sum(s["s"] for s in clock.steps.values()), 3),
            "sha256": digest,
            "products_sha256_without_rank_again": hashlib.sha256(unranked_file).hexdigest(),
            "bytes": {name: len(data) for name, data in files.items()}}


def in_one_process(root: str, ranges: Sequence[tuple[str, str] | None],
                   merchants_out: str | None = None) -> dict[str, Any]:
    """``ranges`` built one after the other in this process, then combined; then a range that
    holds nothing."""
    registry = _Registry()
    wall = time.perf_counter()
    merchant_parts, product_parts, figures = [], [], []
    for bounds in ranges:
        merchants, products, f = range_tables(root, bounds, registry)
        merchant_parts.append(merchants)
        product_parts.append(products)
        figures.append(f)
    built_s = time.perf_counter() - wall
    combine = combined(root, merchant_parts, product_parts, registry, merchants_out)
    total_s = time.perf_counter() - wall
    del merchant_parts, product_parts
    empty = range_tables(root, EMPTY_RANGE, registry)[2]
    return {"ranges_s": round(built_s, 3), "combine": combine, "total_s": round(total_s, 3),
            "ranges": figures, "empty_range": empty, "peak_rss_mb": _peak_rss_mb()}


# -- on Dask, through Prefect ---------------------------------------------------------------------


def _part_key(prefix: str, table: str) -> str:
    return f"{prefix}/{table}.parquet"


def built_range_part(root: str, bounds: tuple[str, str] | None, scratch: str, prefix: str
                     ) -> dict[str, Any]:
    """One range's tables built from the state at ``root`` and written under ``prefix`` in the
    store at ``scratch``; the build's figures."""
    merchants, products, figures = range_tables(root, bounds)
    parts = LocalStorage(scratch)
    wall = time.perf_counter()
    parts.write_parquet(merchants, _part_key(prefix, "merchants"))
    parts.write_parquet(products, _part_key(prefix, "products"))
    figures["write_s"] = round(time.perf_counter() - wall, 3)
    figures["peak_rss_mb"] = _peak_rss_mb()
    return figures


def _process_figures() -> dict[str, Any]:
    return {"pid": os.getpid(), "peak_rss_mb": _peak_rss_mb(),
            "polars_threads": pl.thread_pool_size()}


def on_dask(root: str, ranges: Sequence[tuple[str, str]], workers: int,
            merchants_out: str | None = None) -> dict[str, Any]:
    """``ranges`` as Prefect tasks on the ingest flow's Dask task runner, on a local cluster of
    ``workers`` one-thread processes, then combined in this process. Needs a Prefect API
    (an ephemeral one is started when PREFECT_API_URL is empty)."""
    from distributed import LocalCluster
    from prefect import flow, get_client, task
    from prefect.cache_policies import NO_CACHE

    from flows.ingest import ingest_task_runner

    build_task = task(name="build-uscc-range", cache_policy=NO_CACHE)(built_range_part)
    noop = task(name="no-op", cache_policy=NO_CACHE)(_process_figures)

    @flow(name="bench-scaling-warm-up")
    def warm_up() -> None:
        return None

    @flow(name="bench-scaling")
    def ranges_on_runner(scratch: str) -> dict[str, Any]:
        wall = time.perf_counter()
        first = [f.result() for f in [noop.submit() for _ in range(2 * workers)]]
        warm_s = time.perf_counter() - wall
        wall = time.perf_counter()
        idle = [f.result() for f in [noop.submit() for _ in ranges]]
        noop_s = time.perf_counter() - wall
        wall = time.perf_counter()
        futures = [build_task.submit(root, bounds, scratch, f"range-{i:03d}")
                   for i, bounds in enumerate(ranges)]
        built = [f.result() for f in futures]
        ranges_s = time.perf_counter() - wall
        empty = build_task.submit(root, EMPTY_RANGE, scratch, "empty").result()
        return {"warm_up_s": round(warm_s, 3), "noop_tasks_s": round(noop_s, 3),
                "noop_per_task_s": round(noop_s / len(ranges), 3),
                "idle_workers": first + idle, "ranges_s": round(ranges_s, 3),
                "ranges": built, "empty_range": empty}

    warm_up()  # starts the ephemeral API when there is no server
    with get_client(sync_client=True) as client:
        # Dask's worker processes inherit this environment: the API, and one polars thread
        # each so that the workers share the cores instead of fighting over them.
        os.environ["PREFECT_API_URL"] = str(client.api_url)
    os.environ["POLARS_MAX_THREADS"] = str(max(1, (os.cpu_count() or 1) // workers))
    scratch = tempfile.mkdtemp(prefix="bench-scaling-parts-")
    try:
        wall = time.perf_counter()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster:
            cluster_s = time.perf_counter() - wall
            runner = ingest_task_runner(Settings(_env_file=None, task_runner="dask",
                                                 dask_address=cluster.scheduler_address))
            wall = time.perf_counter()
            figures = ranges_on_runner.with_options(task_runner=runner)(scratch)
            flow_s = time.perf_counter() - wall
            done = {name: prefix.state_counts["memory"]
                    for name, prefix in cluster.scheduler.task_prefixes.items()}
        parts = LocalStorage(scratch)
        wall = time.perf_counter()
        merchant_parts = [parts.read_parquet(_part_key(f"range-{i:03d}", "merchants"))
                          for i in range(len(ranges))]
        product_parts = [parts.read_parquet(_part_key(f"range-{i:03d}", "products"))
                         for i in range(len(ranges))]
        read_parts_s = time.perf_counter() - wall
        combine = combined(root, merchant_parts, product_parts, _Registry(), merchants_out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    workers_rss: dict[int, float] = {}
    for f in [*figures["idle_workers"], *figures["ranges"], figures["empty_range"]]:
        workers_rss[f["pid"]] = max(workers_rss.get(f["pid"], 0.0), f["peak_rss_mb"])
    idle_rss: dict[int, float] = {}
    for f in figures["idle_workers"]:
        idle_rss[f["pid"]] = max(idle_rss.get(f["pid"], 0.0), f["peak_rss_mb"])
    wall_s = figures["ranges_s"] + read_parts_s + combine["s"]
    return {**figures, "cluster_start_s": round(cluster_s, 3), "flow_s": round(flow_s, 3),
            "tasks_on_cluster": done, "read_parts_s": round(read_parts_s, 3),
            "combine": combine, "total_s": round(wall_s, 3),
            "worker_peak_rss_mb": sorted(workers_rss.values()),
            "worker_idle_rss_mb": sorted(idle_rss.values()),
            "worker_polars_threads": sorted({f["polars_threads"]
                                             for f in figures["idle_workers"]}),
            "peak_rss_mb": _peak_rss_mb()}


# -- the harness ----------------------------------------------------------------------------------


def _child(spec: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one configuration in a fresh process (``--child``); its figures."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.scaling", "--child", json.dumps(spec)],
                          cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=CHILD_TIMEOUT_S)
    if done.returncode != 0:
        raise SystemExit(f"{spec['mode']} failed (exit {done.returncode}):\n"
                         f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["process_s"] = round(time.perf_counter() - started, 1)
    figures["load_avg_1m"] = round(os.getloadavg()[0], 2)
    return figures


def _run_child(spec: dict[str, Any]) -> dict[str, Any]:
    ranges = [tuple(r) if r is not None else None for r in spec["ranges"]]
    if spec["mode"] == "dask":
        return on_dask(spec["root"], ranges, spec["workers"], spec["merchants_out"])
    return in_one_process(spec["root"], ranges, spec["merchants_out"])


def _prefect_env(home: Path) -> dict[str, str]:
    return {"PREFECT_HOME": str(home), "PREFECT_API_URL": "",
            "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # A busy machine starts the ephemeral API slower than Prefect's 20 s allow.
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "600"}


def _summary(name: str, run: dict[str, Any], baseline_s: float, baseline_cpu_s: float
             ) -> dict[str, Any]:
    """One configuration's figures. Beside wall times, CPU times, steadier on a busy machine:
    ``cpu_s``, all the work done (ranges and combine; against the whole build's, what cutting
    costs), and on Dask ``critical_path_cpu_s``, the CPU time of the busiest worker's tasks
    plus the combine's (one polars thread each: the wall time the run would take on cores it
    had to itself)."""
    tasks = run["ranges"]
    range_cpu = [t["cpu_s"] for t in tasks]
    combine_cpu = round(sum(s["cpu_s"] for s in run["combine"]["steps"].values()), 3)
    cpu_s = round(sum(range_cpu) + combine_cpu, 3)
    row = {"config": name, "k": len(tasks), "total_s": run["total_s"],
           "speedup_vs_whole": round(baseline_s / run["total_s"], 2),
           "ranges_s": run["ranges_s"], "sum_range_s": round(sum(t["s"] for t in tasks), 3),
           "max_range_s": max(t["s"] for t in tasks), "combine_s": run["combine"]["s"],
           "cpu_s": cpu_s, "cpu_vs_whole": round(cpu_s / baseline_cpu_s, 2),
           "range_cpu_s": range_cpu, "combine_cpu_s": combine_cpu,
           "empty_range_s": run["empty_range"]["s"],
           "empty_range_cpu_s": run["empty_range"]["cpu_s"],
           "read_bytes_per_range": [t["read_bytes"] for t in tasks],
           "peak_rss_mb": run.get("worker_peak_rss_mb", run["peak_rss_mb"]),
           "load_avg_1m": run["load_avg_1m"]}
    if "noop_per_task_s" in run:
        per_worker: dict[int, float] = {}
        for t in tasks:
            per_worker[t["pid"]] = per_worker.get(t["pid"], 0.0) + t["cpu_s"]
        critical = round(max(per_worker.values()) + combine_cpu, 3)
        row.update(noop_per_task_s=run["noop_per_task_s"], warm_up_s=run["warm_up_s"],
                   cluster_start_s=run["cluster_start_s"], read_parts_s=run["read_parts_s"],
                   driver_peak_rss_mb=run["peak_rss_mb"], critical_path_cpu_s=critical,
                   cpu_speedup_vs_whole=round(baseline_cpu_s / critical, 2))
    return row


def harness(args: argparse.Namespace, partial: Path) -> dict[str, Any]:
    """Every configuration, in the order the module says; the figures so far are kept in
    ``partial`` after each one (a long run interrupted keeps them)."""
    started = time.perf_counter()
    root = prepared_state(args.merchants, args.seed)
    prepared = json.loads((root / "prepared.json").read_text())
    layout = state_layout(root)
    wall = time.perf_counter()
    for f in layout:
        pq.read_metadata(root / f["key"])
    footers_s = time.perf_counter() - wall
    ranges = {k: uscc_ranges(root, k) for k in args.ks}
    wall = time.perf_counter()
    uscc_ranges(root, max(args.ks))
    plan_s = time.perf_counter() - wall
    scratch = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    runs: dict[str, dict[str, Any]] = {}

    def run(name: str, spec: dict[str, Any], env: dict[str, str] | None = None) -> None:
        print(f"{name} ...", flush=True)
        runs[name] = _child({"root": str(root), "merchants_out": str(scratch / f"{name}.parquet"),
                             **spec}, env)
        partial.write_text(json.dumps(runs, indent=2, default=str))
        print(f"{name}: {runs[name]['total_s']:.1f} s (ranges {runs[name]['ranges_s']:.1f} s, "
              f"combine {runs[name]['combine']['s']:.1f} s), load {runs[name]['load_avg_1m']}",
              flush=True)

    try:
        run("whole", {"mode": "sequential", "ranges": [None]})
        run("whole-1-thread", {"mode": "sequential", "ranges": [None]},
            {"POLARS_MAX_THREADS": "1"})
        for k in args.ks:
            run(f"sequential-{k}", {"mode": "sequential", "ranges": ranges[k]})
            run(f"dask-{k}", {"mode": "dask", "ranges": ranges[k], "workers": args.workers},
                _prefect_env(scratch / f"prefect-{k}"))
        small = None
        if args.small_row_groups:
            small = with_row_groups(root, args.small_row_groups)
            for k in args.ks:
                run(f"sequential-{k}-rg{args.small_row_groups}",
                    {"root": str(small), "mode": "sequential", "ranges": ranges[k]})
        run("whole-again", {"mode": "sequential", "ranges": [None]})
        whole = pl.read_parquet(scratch / "whole.parquet")
        for name, figures in runs.items():
            figures["merchants_differing_from_whole"] = merchants_differing(
                whole, pl.read_parquet(scratch / f"{name}.parquet"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _report(args, prepared, layout, ranges, runs, footers_s, plan_s, small,
                   time.perf_counter() - started)


def merchants_differing(whole: pl.DataFrame, other: pl.DataFrame) -> dict[str, Any]:
    """How many rows of two merchants tables differ (rows matched by USCC), and in which
    columns, with the first few values of each side."""
    if whole.get_column("uscc").to_list() != other.get_column("uscc").to_list():
        return {"same_usccs": False}
    columns: dict[str, Any] = {}
    rows = pl.Series([False] * whole.height)
    for c in whole.columns:
        differs = whole.get_column(c).ne_missing(other.get_column(c))
        if differs.any():
            rows = rows | differs
            columns[c] = {"rows": int(differs.sum()),
                          "whole": whole.filter(differs).select("uscc", c).head(3).rows(),
                          "this": other.filter(differs).select("uscc", c).head(3).rows()}
    return {"same_usccs": True, "rows": int(rows.sum()), "columns": columns}


def _report(args: argparse.Namespace, prepared: dict[str, Any], layout: list[dict[str, Any]],
            ranges: dict[int, list[tuple[str, str]]], runs: dict[str, dict[str, Any]],
            footers_s: float, plan_s: float, small: Path | None, elapsed: float
            ) -> dict[str, Any]:
    baseline_s = min(runs["whole"]["total_s"], runs["whole-again"]["total_s"])
    whole_cpu = _summary("whole-1-thread", runs["whole-1-thread"], 1.0, 1.0)["cpu_s"]
    whole_sha = runs["whole"]["combine"]["sha256"]
    small_layout = state_layout(small) if small else None
    for name, r in runs.items():
        r["same_tables_as_whole"] = r["combine"]["sha256"] == whole_sha
        r["same_products_without_rank_again"] = (
            r["combine"]["products_sha256_without_rank_again"] == whole_sha["products"])
        this_layout = small_layout if name.endswith(f"rg{args.small_row_groups}") else layout
        for t in r["ranges"]:
            bounds = tuple(t["bounds"]) if t["bounds"] else None
            t["by_statistics"] = ranges_by_statistics(this_layout, bounds)
    state_bytes = sum(f["bytes"] for f in layout)
    ks = ",".join(map(str, args.ks))
    command = f"make bench-scaling SCALE_MERCHANTS={args.merchants} KS={ks}"
    return {
        "benchmark": "scaling",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "registry": prepared,
        "state": {"files": len(layout), "bytes": state_bytes,
                  "rows": sum(f["rows"] for f in layout),
                  "row_groups": sum(len(f["row_groups"]) for f in layout),
                  "footer_bytes": sum(f["footer_bytes"] for f in layout),
                  "read_every_footer_s": round(footers_s, 4),
                  "layout": [{k: v for k, v in f.items() if k != "row_groups"}
                             | {"row_groups": len(f["row_groups"])} for f in layout]},
        "ranges": {str(k): v for k, v in ranges.items()},
        "plan_ranges_s": round(plan_s, 3),
        "workers": args.workers,
        "small_row_groups": args.small_row_groups or None,
        "baseline_whole_s": baseline_s,
        "baseline_whole_cpu_s": whole_cpu,
        "summary": [_summary(name, r, baseline_s, whole_cpu) | {
            "same_tables_as_whole": r["same_tables_as_whole"],
            "tables_differing": [t for t, digest in r["combine"]["sha256"].items()
                                 if digest != whole_sha[t]],
            "merchants_rows_differing": r.get("merchants_differing_from_whole", {}).get("rows"),
            "read_bytes_share_per_range": [round(t["read_bytes"] / state_bytes, 3)
                                           for t in r["ranges"]]}
            for name, r in runs.items()],
        "runs": runs,
        "elapsed_s": round(elapsed, 1),
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(
            psutil.virtual_memory().total / 2**30, 1), "python": platform.python_version(),
            "polars": pl.__version__, "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
            "note": "shared machine: other work runs alongside; figures are noisy"},
    }


def _print(report: dict[str, Any]) -> None:
    print()
    print(f"{'config':<24}{'wall':>7}{'×':>6}{'ranges':>8}{'Σrange':>8}{'combine':>8}"
          f"{'CPU':>7}{'×CPU':>6}{'path':>7}{'empty':>7}{'MB/range':>9}{'RSS MB':>10}"
          "  differing tables, merchants rows")
    for row in report["summary"]:
        reads = row["read_bytes_per_range"]
        rss = row["peak_rss_mb"]
        rss_text = (f"{max(rss):.0f}×{len(rss)}" if isinstance(rss, list) else f"{rss:.0f}")
        path = row.get("critical_path_cpu_s")
        print(f"{row['config']:<24}{row['total_s']:7.1f}{row['speedup_vs_whole']:6.2f}"
              f"{row['ranges_s']:8.1f}{row['sum_range_s']:8.1f}{row['combine_s']:8.1f}"
              f"{row['cpu_s']:7.1f}{row['cpu_vs_whole']:6.2f}"
              f"{f'{path:.1f}' if path is not None else '-':>7}{row['empty_range_s']:7.2f}"
              f"{sum(reads) / len(reads) / 2**20:9.0f}{rss_text:>10}"
              f"  {', '.join(row['tables_differing']) or '-'}, "
              f"{row['merchants_rows_differing']}")
    print("wall and × (speedup) against the whole build; CPU and ×CPU: all the work done, "
          "against the whole build on one thread; path: the busiest Dask worker's CPU plus "
          "the combine's; differing: the tables whose bytes differ from the whole build's")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--merchants", type=int, default=DEFAULT_MERCHANTS,
                        help="Distinct merchants (USCCs) of the registry.")
    parser.add_argument("--ks", type=lambda s: [int(k) for k in s.split(",")],
                        default=list(DEFAULT_KS), help="Numbers of USCC ranges, e.g. 2,4,8.")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS)
    parser.add_argument("--small-row-groups", type=int, default=DEFAULT_SMALL_ROW_GROUPS,
                        help="Rows per row group of the state's copy (0: no such runs).")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_run_child(json.loads(args.child))))
        return
    out = args.out or RESULTS / f"scaling-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    report = harness(args, partial)
    _print(report)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    partial.unlink(missing_ok=True)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
