"""The registry build on polars' streaming engine against the same build in DuckDB.

    .venv/bin/python -m bench.build_engines --root PATH [--duckdb-memory 6GB]
    .venv/bin/python -m bench.build_engines --part changes --previous A.parquet --current B.parquet

On a store whose compacted current state exists (:mod:`registry.publish.state`: any root that
has been published from), each engine computes, from the same state files:

- ``merchants``: the merge (the latest filing per natural key, valid filings merged per USCC),
  the windowed complaint and inspection counts, the gift products' scores and the explainable
  scores: the merchants table as published, but for the listing dates. Polars runs
  :func:`registry.build.tables.registry_tables`, the registry's own build, on the streaming
  engine; DuckDB runs the same rules as one SQL query (:data:`MERCHANTS_SQL`), with the state
  read by ``read_parquet``;
- ``changes``: the delta between two merchants tables (``--previous`` and ``--current``, two
  published ``merchants.parquet`` files): :func:`registry.snapshot.delta.merchant_changes` as
  the publisher runs it (both tables read whole) and on scans collected on the streaming
  engine, against :data:`CHANGES_SQL`.

Each engine runs in a fresh process and prints one JSON line: wall and CPU seconds, and the
peak RSS sampled every 20 ms. DuckDB gets the machine's threads, a memory limit
(``--duckdb-memory``) and a spill folder of its own. The results are then compared with the
polars one cell by cell, by USCC, so the figures are of computations of the same table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import psutil

from bench.generate import BENCH_TODAY

ROOT = Path(__file__).resolve().parent.parent
_RESULT_TAG = "BUILD-ENGINE-RESULT "

# The merchants table but for the listing dates, in SQL. Placeholders: {as_of}, {window_start}
# (as_of - window_days), {merchants}, {complaints}, {inspections}, {evaluations} (lists of
# Parquet paths), {division_case} (the registered region from USCC positions 3-4). The rules are
# those of registry.build (docs/architecture.md §10), with score model v1's numbers, rounding
# half to even as polars does.
MERCHANTS_SQL = """
WITH
ranks AS (SELECT * FROM ranks_frame),
filings_all AS (
  SELECT f.*, r._batch_order, r._batch_order * 4294967296 + f._source_row AS _rk
  FROM read_parquet({merchants}) f JOIN ranks r USING (_batch_id)),
filings AS (
  SELECT a.* FROM filings_all a SEMI JOIN (
    SELECT region, filing_id, max(_rk) AS _rk FROM filings_all GROUP BY ALL) m
  USING (region, filing_id, _rk)),
complaints_all AS (
  SELECT c.*, r._batch_order * 4294967296 + c._source_row AS _rk
  FROM read_parquet({complaints}) c JOIN ranks r USING (_batch_id)
  WHERE c.received_on IS NULL OR c.received_on > DATE '{window_start}'),
complaints AS (
  SELECT a.* FROM complaints_all a SEMI JOIN (
    SELECT region, complaint_id, max(_rk) AS _rk FROM complaints_all GROUP BY ALL) m
  USING (region, complaint_id, _rk)),
inspections_all AS (
  SELECT i.*, r._batch_order * 4294967296 + i._source_row AS _rk
  FROM read_parquet({inspections}) i JOIN ranks r USING (_batch_id)
  WHERE i.tested_on IS NULL OR i.tested_on > DATE '{window_start}'),
inspections AS (
  SELECT a.* FROM inspections_all a SEMI JOIN (
    SELECT region, inspection_id, max(_rk) AS _rk FROM inspections_all GROUP BY ALL) m
  USING (region, inspection_id, _rk)),
evaluations_all AS (
  SELECT e.*, r._batch_order * 4294967296 + e._source_row AS _rk
  FROM read_parquet({evaluations}) e JOIN ranks r USING (_batch_id)),
evaluations AS (
  SELECT a.* FROM evaluations_all a SEMI JOIN (
    SELECT region, product_id, evaluation_round, evaluator_id, max(_rk) AS _rk
    FROM evaluations_all GROUP BY ALL) m
  USING (region, product_id, evaluation_round, evaluator_id, _rk)),
points AS (
  UNPIVOT (SELECT region, product_id, evaluation_round, evaluator_id,
                  quality, culture, packaging, value FROM evaluations)
  ON quality, culture, packaging, value INTO NAME dimension VALUE points),
positioned AS (
  SELECT *, row_number() OVER w AS pos, count(*) OVER (
      PARTITION BY region, product_id, evaluation_round, dimension) AS n
  FROM points
  WINDOW w AS (PARTITION BY region, product_id, evaluation_round, dimension
               ORDER BY points, evaluator_id)),
trimmed AS (
  SELECT region, product_id, evaluation_round,
         avg(points) FILTER (dimension = 'quality') AS quality,
         avg(points) FILTER (dimension = 'culture') AS culture,
         avg(points) FILTER (dimension = 'packaging') AS packaging,
         avg(points) FILTER (dimension = 'value') AS value
  FROM positioned
  WHERE pos > (CASE WHEN n >= 5 THEN greatest(floor(n * 0.1)::BIGINT, 1) ELSE 0 END)
    AND pos <= n - (CASE WHEN n >= 5 THEN greatest(floor(n * 0.1)::BIGINT, 1) ELSE 0 END)
  GROUP BY ALL),
described AS (
  SELECT region, product_id, evaluation_round, arg_max(uscc, _rk) AS uscc,
         list_distinct(list(_batch_id)) AS batches
  FROM evaluations GROUP BY ALL),
products AS (
  SELECT d.uscc, d.batches, list_avg([t.quality, t.culture, t.packaging, t.value]) AS overall
  FROM described d LEFT JOIN trimmed t USING (region, product_id, evaluation_round)),
gift AS (
  SELECT uscc, avg(overall) AS gift_score, list_distinct(flatten(list(batches))) AS batches
  FROM products GROUP BY uscc),
valid AS (
  SELECT *, {division_case} AS registered_region FROM filings
  WHERE status = 'active' AND valid_from <= DATE '{as_of}'
    AND (valid_until IS NULL OR valid_until >= DATE '{as_of}')),
merged AS (
  SELECT uscc,
    first(merchant_name ORDER BY (region = registered_region) DESC, _batch_order DESC, region,
          filing_id) AS name,
    list_sort(list_distinct(list(merchant_name))) AS name_variants,
    count(DISTINCT merchant_name_key)
      + (count(*) FILTER (merchant_name_key IS NULL) > 0)::INT > 1 AS name_conflict,
    list_sort(list_distinct(list(region))) AS regions,
    any_value(registered_region) AS registered_region,
    list_sort(list_distinct(list(program))) AS programs,
    list_sort(list_distinct(flatten(list(categories)))) AS categories,
    list_sort(list_distinct(flatten(list(origin_countries)))) AS origin_countries,
    bool_and(coalesce(chinese_label, false)) AS chinese_label,
    bool_and(coalesce(traceable, false)) AS traceable,
    bool_and(coalesce(no_reason_return_7d, false)) AS no_reason_return_7d,
    bool_and(coalesce(offline_no_reason_return, false)) AS offline_no_reason_return,
    bool_and(coalesce(advance_compensation, false)) AS advance_compensation,
    max(valid_until) AS valid_until
  FROM valid GROUP BY uscc),
statuses AS (
  SELECT uscc, list_sort(list_distinct(list(status))) AS statuses,
         list_distinct(list(_batch_id)) AS batches
  FROM filings GROUP BY uscc),
complaint_counts AS (
  SELECT uscc, count(*) AS complaints_12m,
         count(*) FILTER (status IN ('unresolved', 'in_progress')) AS unresolved_12m,
         list_distinct(list(_batch_id)) AS batches
  FROM complaints
  WHERE received_on > DATE '{window_start}' AND received_on <= DATE '{as_of}' GROUP BY uscc),
inspection_counts AS (
  SELECT uscc, count(*) AS inspections_12m,
         count(*) FILTER (result = 'fail') AS failed_inspections_12m,
         count(*) FILTER (result = 'fail' AND severity = 'serious') AS serious_failures_12m,
         list_distinct(list(_batch_id)) AS batches
  FROM inspections
  WHERE tested_on > DATE '{window_start}' AND tested_on <= DATE '{as_of}' GROUP BY uscc),
facts AS (
  SELECT m.*, s.statuses,
    coalesce(c.complaints_12m, 0) AS complaints_12m,
    coalesce(c.unresolved_12m, 0) AS unresolved_12m,
    coalesce(i.inspections_12m, 0) AS inspections_12m,
    coalesce(i.failed_inspections_12m, 0) AS failed_inspections_12m,
    coalesce(i.serious_failures_12m, 0) AS serious_failures_12m,
    g.gift_score,
    list_sort(list_distinct(flatten([coalesce(s.batches, []), coalesce(c.batches, []),
                                     coalesce(i.batches, []), coalesce(g.batches, [])])))
      AS source_batches
  FROM merged m LEFT JOIN statuses s USING (uscc) LEFT JOIN complaint_counts c USING (uscc)
  LEFT JOIN inspection_counts i USING (uscc) LEFT JOIN gift g USING (uscc)),
components AS (
  SELECT *,
    (CASE WHEN chinese_label THEN 10.0 ELSE 0.0 END) + (CASE WHEN traceable THEN 10.0 ELSE 0.0 END)
      + (CASE WHEN no_reason_return_7d THEN 10.0 ELSE 0.0 END)
      + (CASE WHEN offline_no_reason_return THEN 5.0 ELSE 0.0 END)
      + (CASE WHEN advance_compensation THEN 5.0 ELSE 0.0 END) AS c_compliance,
    greatest(30 - unresolved_12m * 3
             - greatest(complaints_12m - unresolved_12m - 3, 0) * 1, 0)::DOUBLE AS c_complaints,
    coalesce(
      list_avg([CASE WHEN inspections_12m > 0 THEN
                  (inspections_12m - failed_inspections_12m) / inspections_12m * 30 END,
                CASE WHEN list_contains(programs, 'specialty_gift') AND gift_score IS NOT NULL
                  THEN gift_score / 10 * 30 END]), 20.0) AS c_quality,
    list_filter([CASE WHEN list_contains(statuses, 'revoked') THEN 'status_revoked' END,
                 CASE WHEN list_contains(statuses, 'suspended') THEN 'status_suspended' END,
                 CASE WHEN serious_failures_12m > 0 THEN 'serious_inspection_failure' END,
                 CASE WHEN unresolved_12m > 5 THEN 'unresolved_complaints_over_limit' END],
                x -> x IS NOT NULL) AS disqualifications
  FROM facts),
scored AS (
  SELECT *, round_even(c_compliance + c_complaints + c_quality, 2) AS score FROM components),
graded AS (
  SELECT *, CASE WHEN len(disqualifications) = 0 THEN
      CASE WHEN score >= 85 THEN 'A' WHEN score >= 70 THEN 'B' WHEN score >= 60 THEN 'C' END
    END AS grade FROM scored)
SELECT uscc, name, name_variants, name_conflict, regions, registered_region, programs,
  categories, origin_countries, chinese_label, traceable, no_reason_return_7d,
  offline_no_reason_return, advance_compensation, valid_until, complaints_12m, unresolved_12m,
  inspections_12m, failed_inspections_12m, round_even(gift_score, 2) AS gift_score,
  round_even(c_compliance, 2) AS score_compliance,
  round_even(c_complaints, 2) AS score_complaints, round_even(c_quality, 2) AS score_quality,
  score, grade,
  coalesce(grade IN ('A', 'B'), false) AND len(disqualifications) = 0 AS trusted,
  disqualifications, source_batches,
  CASE WHEN len(disqualifications) > 0 THEN 'disqualified'
       WHEN coalesce(grade IN ('A', 'B'), false) THEN 'trusted' ELSE 'listed' END AS verdict
FROM graded ORDER BY uscc
"""

# The delta between two merchants tables (registry.snapshot.delta), for the columns both have.
CHANGES_SQL = """
WITH before AS (SELECT *, true AS _was FROM read_parquet('{previous}')),
after AS (SELECT *, true AS _is FROM read_parquet('{current}')),
joined AS (
  SELECT coalesce(a.uscc, b.uscc) AS uscc, coalesce(b._was, false) AS was,
         coalesce(a._is, false) AS is_,
         list_filter([{differs}], x -> x IS NOT NULL) AS differing,
         b.grade AS grade_before, a.grade AS grade_after, b.score AS score_before,
         a.score AS score_after, b.trusted AS trusted_before, a.trusted AS trusted_after
  FROM after a FULL JOIN before b USING (uscc)),
classified AS (
  SELECT *, CASE WHEN was AND is_ THEN differing ELSE []::VARCHAR[] END AS fields_changed,
    CASE WHEN NOT was THEN 'added' WHEN NOT is_ THEN 'removed'
         WHEN len(differing) > 0 THEN 'updated' END AS change
  FROM joined)
SELECT uscc, change, fields_changed, grade_before, grade_after, score_before, score_after,
       trusted_before, trusted_after
FROM classified WHERE change IS NOT NULL ORDER BY uscc
"""
ENGINES = ("polars", "polars-streaming", "duckdb")
_NOT_COMPARED = ("uscc", "first_listed_on", "last_changed_on", "source_batches")


def _state(root: Path) -> tuple[dict[str, list[str]], pl.DataFrame, Any]:
    """The state files per dataset, each batch's rank in ledger order, and the pointer."""
    from registry.publish.state import read_pointer
    from registry.storage import LocalStorage

    storage = LocalStorage(root)
    found = read_pointer(storage)
    if found is None:
        raise SystemExit(f"{root} has no compacted state: publish from it once first")
    pointer = found[0]
    files: dict[str, list[str]] = {}
    for part in pointer.partitions:
        files.setdefault(part.dataset, []).append(str(root / part.key))
    ranked = sorted({ref.order for part in pointer.partitions for ref in part.batches})
    ranks = pl.DataFrame({"_batch_id": [order[2] for order in ranked],
                          "_batch_order": list(range(len(ranked)))},
                         schema={"_batch_id": pl.String, "_batch_order": pl.Int64})
    return files, ranks, pointer


def _merchants_polars(root: Path) -> pl.DataFrame:
    from registry.build.tables import registry_tables
    from registry.config.contracts import load_contracts, natural_keys
    from registry.config.regions import load_regions
    from registry.config.score_model import load_score_model
    from registry.config.settings import PROJECT_ROOT
    from registry.publish.state import state_inputs
    from registry.storage import LocalStorage

    model = load_score_model(PROJECT_ROOT / "config", 1).model
    divisions = load_regions(PROJECT_ROOT / "config").division_regions
    keys = natural_keys(load_contracts(PROJECT_ROOT / "schemas"))
    _, _, pointer = _state(root)
    inputs = state_inputs(LocalStorage(root), pointer,
                          BENCH_TODAY - timedelta(days=model.window_days))
    return registry_tables(inputs, BENCH_TODAY, model, divisions, keys).merchants.collect(
        engine="streaming")


def _duckdb(spill: Path, threads: int, memory: str):
    import duckdb

    return duckdb.connect(config={"threads": threads, "memory_limit": memory,
                                  "temp_directory": str(spill),
                                  "preserve_insertion_order": False})


def _merchants_duckdb(root: Path, spill: Path, threads: int, memory: str) -> pl.DataFrame:
    from registry.config.regions import load_regions
    from registry.config.settings import PROJECT_ROOT

    files, ranks, _ = _state(root)
    divisions = load_regions(PROJECT_ROOT / "config").division_regions
    division_case = ("CASE substr(uscc, 3, 2) " + " ".join(
        f"WHEN '{code}' THEN '{region}'" for code, region in sorted(divisions.items()))
        + " END")
    sql = MERCHANTS_SQL.format(
        as_of=BENCH_TODAY.isoformat(),
        window_start=(BENCH_TODAY - timedelta(days=365)).isoformat(),
        division_case=division_case,
        **{name: json.dumps(files.get(dataset, [])).replace('"', "'")
           for name, dataset in (("merchants", "merchants"), ("complaints", "complaints"),
                                 ("inspections", "inspections"),
                                 ("evaluations", "gift_evaluations"))})
    con = _duckdb(spill, threads, memory)
    con.register("ranks_frame", ranks.to_arrow())
    return pl.from_arrow(con.execute(sql).fetch_arrow_table())


def _changes_polars(previous: Path, current: Path) -> pl.DataFrame:
    """As the publisher runs it: both tables read whole, the delta on DataFrames."""
    from registry.snapshot.delta import merchant_changes

    return merchant_changes(pl.read_parquet(previous), pl.read_parquet(current))


def _changes_polars_streaming(previous: Path, current: Path) -> pl.DataFrame:
    """The same function on scans of the two files, collected on the streaming engine (it
    asks a LazyFrame for its columns, which polars warns about)."""
    from registry.snapshot.delta import merchant_changes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pl.exceptions.PerformanceWarning)
        changes = merchant_changes(pl.scan_parquet(previous), pl.scan_parquet(current))
    return changes.collect(engine="streaming")


def _changes_duckdb(previous: Path, current: Path, spill: Path, threads: int, memory: str
                    ) -> pl.DataFrame:
    columns = pl.read_parquet_schema(current)
    compared = [c for c in columns if c not in _NOT_COMPARED]
    differs = ", ".join(f"CASE WHEN a.{c} IS DISTINCT FROM b.{c} THEN '{c}' END"
                        for c in compared)
    con = _duckdb(spill, threads, memory)
    sql = CHANGES_SQL.format(previous=previous, current=current, differs=differs)
    return pl.from_arrow(con.execute(sql).fetch_arrow_table())


def _one(args: argparse.Namespace) -> dict[str, Any]:
    process = psutil.Process()
    peak = [process.memory_info().rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            stop.wait(0.02)

    threading.Thread(target=sample, daemon=True).start()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="duckdb-spill-") as spill:
        if args.part == "merchants":
            root = Path(args.root)
            frame = (_merchants_polars(root) if args.engine == "polars"
                     else _merchants_duckdb(root, Path(spill), args.threads,
                                            args.duckdb_memory))
        elif args.engine == "polars":
            frame = _changes_polars(Path(args.previous), Path(args.current))
        elif args.engine == "polars-streaming":
            frame = _changes_polars_streaming(Path(args.previous), Path(args.current))
        else:
            frame = _changes_duckdb(Path(args.previous), Path(args.current), Path(spill),
                                    args.threads, args.duckdb_memory)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    if args.out:
        frame.write_parquet(args.out)
    return {"part": args.part, "engine": args.engine, "rows": frame.height,
            "seconds": round(seconds, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime - cpu, 2),
            "peak_rss_mb": round(peak[0] / 2**20)}


def _differences(polars_out: Path, duckdb_out: Path) -> dict[str, int]:
    """Per column, the rows whose values differ between the two results (by USCC)."""
    left, right = pl.read_parquet(polars_out), pl.read_parquet(duckdb_out)
    if left.height != right.height:
        return {"rows": abs(left.height - right.height)}
    joined = left.join(right, on="uscc", how="full", suffix="__duckdb")
    return {c: joined.filter(pl.col(c).ne_missing(pl.col(c + "__duckdb"))).height
            for c in left.columns if c != "uscc"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="A store with a compacted state (merchants).")
    parser.add_argument("--part", choices=("merchants", "changes"), default="merchants")
    parser.add_argument("--previous", help="merchants.parquet of the earlier snapshot.")
    parser.add_argument("--current", help="merchants.parquet of the later snapshot.")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--duckdb-memory", default="2GB")
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        print(_RESULT_TAG + json.dumps(_one(args)), flush=True)
        return
    engines = ENGINES if args.part == "changes" else ("polars", "duckdb")
    with tempfile.TemporaryDirectory(prefix="build-engines-") as scratch:
        finished = []
        for engine in engines:
            out = Path(scratch) / f"{engine}.parquet"
            command = [sys.executable, "-m", "bench.build_engines", *sys.argv[1:],
                       "--engine", engine, "--out", str(out)]
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                  check=False)
            if done.returncode != 0:
                # DuckDB out of memory is a result too: say so and go on.
                lines = done.stderr.strip().splitlines() or ["?"]
                error = next((x for x in reversed(lines) if "Error" in x), lines[-1])
                print(json.dumps({"part": args.part, "engine": engine, "failed": error}),
                      flush=True)
                continue
            line = next(x for x in done.stdout.splitlines() if x.startswith(_RESULT_TAG))
            print(line[len(_RESULT_TAG):], flush=True)
            finished.append(engine)
        for engine in finished:
            if engine == "polars" or "polars" not in finished:
                continue
            differing = {c: n for c, n in _differences(
                Path(scratch) / "polars.parquet", Path(scratch) / f"{engine}.parquet").items()
                if n}
            print(json.dumps({"part": args.part, "against": engine,
                              "rows_differing_by_column": differing}))

if __name__ == "__main__":
    main()
