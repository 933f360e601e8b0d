"""Ingest 1,000,000 merchant rows from CSV and compare with the floor, in the same run.

    .venv/bin/python -m bench.ingest_1m [--rows N] [--repeat R]

- floor: polars ``read_csv`` + ``write_parquet`` of the same file (no validation at all);
- ingest: ``registry.ingest.ingest_object`` on local storage in a temporary folder: hash and
  archive the raw bytes, claim, read, normalise, validate every row, check the staged schema,
  write staged and quarantined Parquet, the batch record and the receipt.

The input is generated once, deterministically, into bench/data/ (gitignored): a realistic
Jiangsu export with Chinese headers, mixed date spellings, Traditional names, and about 2% bad
rows (USCC, dates, cities of another province, duplicate filing ids). Each step runs
``--repeat`` times, floor and ingest alternating; the best time of each counts. Results go to
bench/results/ingest_1m.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from registry.ingest import ingest_object
from registry.settings import Settings
from registry.storage import LocalStorage

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
TARGET_RATIO = 3.0
_ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKLMNPQRTUWXY", dtype=np.uint8)
_JS_CITIES = [("南京", "320102"), ("苏州市", "320505"), ("无锡", "320211"), ("常州", "320402"),
              ("Nanjing", "320106"), ("扬州", "321002"), ("南通", "320602"), ("徐州", "320302")]
HEADER = ["备案编号", "统一社会信用代码", "经营者名称", "门店名称", "备案类别", "所在城市",
          "区县", "经营地址", "经营品类", "原产国", "中文标签", "可追溯", "七日无理由退货",
          "线下无理由退货", "先行赔付", "备案日期", "有效期至", "状态", "联系人", "联系电话"]


def _usccs(rng: np.random.Generator, divisions: np.ndarray) -> np.ndarray:
    """Valid USCCs, vectorised with numpy (both GB 11714 and GB 32100 check characters)."""
    n = len(divisions)
    body = rng.integers(0, 31, size=(n, 8))  # organisation-code body from the USCC alphabet
    org_values = np.where(body < 10, body, _ALPHABET[body].astype(np.int64) - 55)
    org = 11 - (org_values * np.array([3, 7, 9, 10, 5, 8, 4, 2])).sum(axis=1) % 11
    org_char = np.where(org == 10, ord("X"), np.where(org == 11, ord("0"), org + ord("0")))
    head = np.frombuffer("".join(f"91{d}" for d in divisions).encode(), np.uint8).reshape(n, 8)
    first17 = np.concatenate([head, _ALPHABET[body], org_char[:, None].astype(np.uint8)], axis=1)
    lookup = np.zeros(256, dtype=np.int64)
    lookup[_ALPHABET] = np.arange(31)
    total = (lookup[first17] * np.array([pow(3, i, 31) for i in range(17)])).sum(axis=1)
    check = _ALPHABET[(31 - total % 31) % 31]
    codes = np.concatenate([first17, check[:, None]], axis=1)
    return codes.view("S18").ravel().astype(str)


def generate_merchants_csv(path: Path, rows: int, seed: int = 20241130) -> None:
    """A realistic Jiangsu merchant export of ``rows`` rows (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    city_idx = rng.integers(0, len(_JS_CITIES), rows)
    cities = np.array([c for c, _ in _JS_CITIES])[city_idx]
    divisions = np.array([d for _, d in _JS_CITIES])[city_idx]
    usccs = _usccs(rng, divisions)
    bad = rng.random(rows)
    usccs = np.where(bad < 0.005, np.char.add(np.char.ljust(usccs, 17).astype("U17"), "0"), usccs)
    cities = np.where((bad >= 0.005) & (bad < 0.01), "杭州", cities)
    filing = np.char.add("JS-", np.char.zfill(np.arange(rows).astype(str), 8))
    dup = (bad >= 0.01) & (bad < 0.015)
    filing = np.where(dup, np.char.add("JS-", np.char.zfill((np.arange(rows) // 2 * 2)
                                                             .astype(str), 8)), filing)
    day = rng.integers(0, 1500, rows)
    start = np.datetime64("2021-01-01") + day
    spelled = rng.integers(0, 4, rows)
    frame = pl.DataFrame({"start": start, "spelled": spelled, "bad": bad}).with_columns(
        end=pl.col("start") + pl.duration(days=730),
    )
    iso = frame["start"].dt.strftime("%Y-%m-%d")
    slashes = frame["start"].dt.strftime("%Y/%-m/%-d")
    chinese = frame["start"].dt.strftime("%Y年%-m月%-d日")
    serial = frame.select(
        (pl.col("start") - pl.date(1899, 12, 30)).dt.total_days().cast(pl.String)
    ).to_series()
    valid_from = (
        pl.DataFrame({"s": spelled, "a": iso, "b": slashes, "c": chinese, "d": serial})
        .select(pl.when(pl.col("s") == 0).then("a").when(pl.col("s") == 1).then("b")
                .when(pl.col("s") == 2).then("c").otherwise("d"))
        .to_series()
    )
    valid_from = pl.Series(np.where((bad >= 0.015) & (bad < 0.02), "2023-02-30",
                                    valid_from.to_numpy()))
    names = np.array(["國際貿易有限公司", "进口商品商贸有限公司", "跨境电商有限公司",
                      "百货有限公司", "食品有限公司"])[rng.integers(0, 5, rows)]
    program = np.array(["进口商品", "特色伴手礼"])[(rng.random(rows) < 0.2).astype(int)]
    origins = np.array(["日本、法国", "AU;NZ", "德国", "意大利/西班牙", "韩国"])[
        rng.integers(0, 5, rows)]
    yes_no = np.array(["是", "否", "Y", "N", "1", "0"])
    out = pl.DataFrame({
        "备案编号": filing,
        "统一社会信用代码": usccs,
        "经营者名称": np.char.add(np.char.add(cities, np.arange(rows).astype(str)), names),
        "门店名称": np.where(rng.random(rows) < 0.5, "", "旗舰店"),
        "备案类别": program,
        "所在城市": cities,
        "区县": np.array(["玄武区", "姑苏区", "梁溪区", "天宁区", ""])[rng.integers(0, 5, rows)],
        "经营地址": np.char.add("中山路", rng.integers(1, 999, rows).astype(str)),
        "经营品类": np.array(["食品、酒类", "化妆品", "母婴/保健品", "服饰;箱包"])[
            rng.integers(0, 4, rows)],
        "原产国": np.where(program == "进口商品", origins, ""),
        **{h: yes_no[rng.integers(0, 6, rows)] for h in HEADER[10:15]},
        "备案日期": valid_from.to_numpy(),
        "有效期至": frame["end"].dt.strftime("%Y-%m-%d").to_numpy(),
        "状态": np.array(["有效", "有效", "有效", "暂停", "撤销"])[rng.integers(0, 5, rows)],
        "联系人": np.where(rng.random(rows) < 0.7, "王经理", ""),
        "联系电话": np.char.add("139", np.char.zfill(rng.integers(0, 10**8, rows).astype(str), 8)),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    out.select(HEADER).write_csv(tmp)
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    source = DATA / f"merchants_{args.rows}.csv"
    if not source.exists():
        print(f"generating {source} ...", flush=True)
        generate_merchants_csv(source, args.rows)
    size = source.stat().st_size
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        def floor() -> None:
            pl.read_csv(source).write_parquet(work / "floor.parquet")

        run = {"n": 0}

        def ingest():
            # A fresh storage root each time, so every run does the whole job.
            run["n"] += 1
            storage = LocalStorage(work / f"root{run['n']}")
            key = "landing/JS/merchants/merchants.csv"
            storage.write_bytes(key, source.read_bytes())
            settings = Settings(_env_file=None, storage_uri=storage.root_uri)
            start, cpu = time.perf_counter(), time.process_time()
            result = ingest_object(storage, settings, key)
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            shutil.rmtree(storage.root)
            return elapsed, cpu, result

        # Interleaved, so that a busy moment on a shared machine hits both sides alike. CPU
        # time (all threads) is reported too: it says how much work each side does, which
        # other processes on the machine disturb much less than the wall clock.
        floor_times, ingest_times, floor_cpu, ingest_cpu, result = [], [], [], [], None
        for _ in range(args.repeat):
            start, cpu = time.perf_counter(), time.process_time()
            floor()
            floor_times.append(time.perf_counter() - start)
            floor_cpu.append(time.process_time() - cpu)
            elapsed, cpu, result = ingest()
            ingest_times.append(elapsed)
            ingest_cpu.append(cpu)
        floor_best, ingest_best = min(floor_times), min(ingest_times)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ratio = ingest_best / floor_best
    report = {
        "bench": "ingest_1m",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "polars": pl.__version__},
        "rows": args.rows,
        "csv_bytes": size,
        "floor_s": round(floor_best, 3),
        "floor_runs_s": [round(t, 3) for t in floor_times],
        "ingest_s": round(ingest_best, 3),
        "ingest_runs_s": [round(t, 3) for t in ingest_times],
        "ratio": round(ratio, 2),
        "floor_cpu_s": round(min(floor_cpu), 3),
        "ingest_cpu_s": round(min(ingest_cpu), 3),
        "cpu_ratio": round(min(ingest_cpu) / min(floor_cpu), 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "target_ratio": TARGET_RATIO,
        "within_target": ratio <= TARGET_RATIO,
        "accepted": result.accepted,
        "quarantined": result.quarantined,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest_1m.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"{args.rows:,} rows, {size / 1e6:.0f} MB CSV")
    print(f"floor  (read_csv + write_parquet): {floor_best:6.2f} s  "
          f"{[round(t, 2) for t in floor_times]}")
    print(f"ingest (archive, parse, validate, stage): {ingest_best:6.2f} s  "
          f"{[round(t, 2) for t in ingest_times]}")
    print(f"ratio {ratio:.2f} (target <= {TARGET_RATIO}); CPU time {min(ingest_cpu):.2f} s vs "
          f"{min(floor_cpu):.2f} s, ratio {report['cpu_ratio']:.2f}; load {os.getloadavg()[0]:.1f}")
    print(f"accepted {result.accepted:,}, quarantined {result.quarantined:,}")


if __name__ == "__main__":
    main()
