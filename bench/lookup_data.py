"""A synthetic merchants table of the published schema, for the lookup benchmark.

Valid, unique USCCs (both check characters right) of the four provinces, sorted as the
publisher sorts them; Chinese names, lists of regions, programmes, categories and origin
countries, scores, grades, verdicts and disqualifications in plausible proportions, so that
the Parquet file compresses like a real one. Cached once per size and seed under bench/data/
(gitignored) as plain Parquet; the benchmark serialises it again with the publisher's own
``parquet_bytes``, so that the bytes measured are the bytes a publication writes.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl

from registry.build.columns import MERCHANT_COLUMNS
from registry.config.published import load_published_contracts
from registry.ingest.uscc import USCC_ALPHABET, mod31_check_characters, org_check_characters

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
AS_OF = date(2026, 6, 30)
_ALPHABET = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
# Province division codes (GB/T 2260) and the region each one is.
_PROVINCES = {"31": "SH", "32": "JS", "33": "ZJ", "34": "AH"}
_SURNAMES = list("长江沪苏浙皖金海华东申宁杭合徐温嘉湖扬镇")
_WORDS = ["环球", "优选", "臻品", "汇通", "恒信", "鼎盛", "万家", "顺达", "瑞丰", "嘉禾",
          "佳美", "聚源", "百汇", "宏远", "天成", "新创", "康宁", "锦程", "永泰", "盛世"]
_KINDS = ["进口商品有限公司", "贸易有限公司", "国际贸易有限公司", "食品有限公司",
          "跨境电商有限公司", "超市有限公司", "酒业有限公司", "母婴用品有限公司"]
_CATEGORIES = ["food", "wine", "cosmetics", "baby", "health", "electronics", "apparel", "tea"]
_COUNTRIES = ["FR", "DE", "JP", "KR", "AU", "NZ", "US", "IT", "ES", "GB", "CL", "TH"]
_DISQUALIFIERS = ["status_revoked", "status_suspended", "serious_inspection_failure",
                  "unresolved_complaints_over_limit"]


def cache_path(rows: int, seed: int) -> Path:
    return DATA / f"lookup-merchants-{rows}-seed{seed}.parquet"


def merchants_table(rows: int, seed: int, *, log=print) -> pl.DataFrame:
    """The table, from the cache when it is there (generated and cached otherwise)."""
    path = cache_path(rows, seed)
    if path.exists():
        return pl.read_parquet(path)
    log(f"generating {rows:,} synthetic merchants into {path} (once)")
    frame = synthetic_merchants(rows, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return frame


def usccs(rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` distinct valid codes (as an (n, 18) array of ASCII bytes) and their provinces."""
    chars = np.empty((rows, 18), dtype=np.uint8)
    chars[:, 0] = ord("9")
    chars[:, 1] = ord("1")
    provinces = rng.integers(0, len(_PROVINCES), rows)
    division = np.array([list(f"{p}{c:04d}".encode()) for p in _PROVINCES
                         for c in (100, 200, 500, 600)], dtype=np.uint8)
    chars[:, 2:8] = division[provinces * 4 + rng.integers(0, 4, rows)]
    # Positions 9-16: a distinct number per row (an affine map of the row index, so the codes
    # are spread over the whole range), in base 31.
    number = (np.arange(rows, dtype=np.int64) * 7_919_993 + int(rng.integers(0, 10**9))) % (
        31**8)
    for position in range(15, 7, -1):
        chars[:, position] = _ALPHABET[number % 31]
        number //= 31
    chars[:, 16] = org_check_characters(chars[:, 8:16])
    chars[:, 17] = mod31_check_characters(chars[:, :17])
    return chars, provinces


def synthetic_merchants(rows: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    codes, provinces = usccs(rows, rng)
    region_names = np.array(list(_PROVINCES.values()))

    def pick(values: list[str], size: int | None = None) -> pl.Series:
        return pl.Series(values).gather(rng.integers(0, len(values), size or rows))

    def chance(p: float) -> np.ndarray:
        return rng.random(rows) < p

    name = (pick(_SURNAMES) + pick(_SURNAMES) + pick(_WORDS) + pick(_KINDS)).alias("name")
    disqualified = chance(0.04)
    score_compliance = np.round(rng.uniform(10, 40, rows), 1)
    score_complaints = np.round(rng.uniform(10, 30, rows), 1)
    score_quality = np.round(rng.uniform(5, 30, rows), 1)
    score = np.round(score_compliance + score_complaints + score_quality, 1)
    frame = pl.DataFrame({
        "uscc": pl.Series(np.ascontiguousarray(codes).view("S18").ravel()).cast(pl.String),
        "name": name,
        "_variant": chance(0.02),
        "_home": region_names[provinces],
        "_second": pl.Series(region_names[rng.integers(0, 4, rows)]),
        "_two_regions": chance(0.15),
        "_gift": chance(0.1),
        "_cat1": pick(_CATEGORIES), "_cat2": pick(_CATEGORIES), "_two_cats": chance(0.4),
        "_c1": pick(_COUNTRIES), "_c2": pick(_COUNTRIES), "_two_countries": chance(0.3),
        **{flag: chance(0.9) for flag in ("chinese_label", "traceable", "no_reason_return_7d",
                                          "offline_no_reason_return", "advance_compensation")},
        "valid_until": pl.Series([AS_OF]).gather(np.zeros(rows, dtype=np.int64))
        + pl.Series(rng.integers(30, 1500, rows)).cast(pl.Duration("ms")) * 86_400_000,
        "complaints_12m": rng.poisson(1.2, rows),
        "unresolved_12m": rng.poisson(0.3, rows),
        "inspections_12m": rng.poisson(0.8, rows),
        "failed_inspections_12m": rng.poisson(0.05, rows),
        "gift_score": np.where(chance(0.1), np.round(rng.uniform(50, 100, rows), 2), np.nan),
        "score_compliance": score_compliance,
        "score_complaints": score_complaints,
        "score_quality": score_quality,
        "score": score,
        "_disqualified": disqualified,
        "_dq": pick(_DISQUALIFIERS),
        "first_listed_on": pl.Series([AS_OF]).gather(np.zeros(rows, dtype=np.int64))
        - pl.Series(rng.integers(0, 900, rows)).cast(pl.Duration("ms")) * 86_400_000,
        "_changed_days": rng.integers(0, 180, rows),
        "_batch": pl.Series([f"20260{m}01T000000Z-{r.lower()}{m}" for m in range(1, 7)
                             for r in _PROVINCES.values()]).gather(rng.integers(0, 24, rows)),
    })
    grade = (pl.when(pl.col("_disqualified")).then(None)
             .when(pl.col("score") >= 85).then(pl.lit("A"))
             .when(pl.col("score") >= 70).then(pl.lit("B"))
             .when(pl.col("score") >= 55).then(pl.lit("C")))
    frame = frame.with_columns(grade=grade)
    verdict = (pl.when(pl.col("_disqualified")).then(pl.lit("disqualified"))
               .when(pl.col("grade").is_in(["A", "B"])).then(pl.lit("trusted"))
               .otherwise(pl.lit("listed")))
    built = frame.with_columns(
        pl.col("valid_until").cast(pl.Date), pl.col("first_listed_on").cast(pl.Date),
        pl.col("gift_score").fill_nan(None),
        name_variants=pl.when(pl.col("_variant"))
        .then(pl.concat_list("name", pl.col("name").str.replace("有限公司", "股份有限公司")))
        .otherwise(pl.concat_list("name")),
        name_conflict=pl.col("_variant"),
        regions=pl.when(pl.col("_two_regions") & (pl.col("_second") != pl.col("_home")))
        .then(pl.concat_list("_home", "_second").list.sort())
        .otherwise(pl.concat_list("_home")),
        registered_region=pl.col("_home"),
        programs=pl.when(pl.col("_gift"))
        .then(pl.lit(["imported_goods", "specialty_gift"]))
        .otherwise(pl.lit(["imported_goods"])),
        categories=pl.when(pl.col("_two_cats"))
        .then(pl.concat_list("_cat1", "_cat2").list.unique().list.sort())
        .otherwise(pl.concat_list("_cat1")),
        origin_countries=pl.when(pl.col("_two_countries"))
        .then(pl.concat_list("_c1", "_c2").list.unique().list.sort())
        .otherwise(pl.concat_list("_c1")),
        trusted=pl.col("grade").is_in(["A", "B"]).fill_null(False),
        disqualifications=pl.when(pl.col("_disqualified"))
        .then(pl.concat_list("_dq")).otherwise(pl.lit([], dtype=pl.List(pl.String))),
        source_batches=pl.concat_list("_batch"),
        verdict=verdict,
    ).with_columns(
        last_changed_on=pl.max_horizontal(
            pl.col("first_listed_on"),
            pl.lit(AS_OF) - pl.duration(days=pl.col("_changed_days"))),
    )
    schema = load_published_contracts()["merchants"].schema
    return built.select(MERCHANT_COLUMNS).cast(schema).sort("uscc")


