"""A year of council uploads at a constant registry size, as committed batches, for
:mod:`bench.history`.

Running the real ingest over a year of daily uploads at tier-M size (about a million filings a
day) would take days, and it is not what the history benchmark measures. So each upload is
written the way ingestion leaves it: its accepted rows as staged Parquet under
``registry.storage.layout.staged_prefix``, typed as the dataset's contract says
(``Contract.staged_schema``, lineage columns included), its quarantined rows under
``quarantine_prefix``, then committed by a :class:`~registry.ledger.BatchRecord` through
:func:`registry.ledger.commit_batch`. Publication reads them exactly as it reads ingested
batches. The batch gate is not run: every batch is committed as ``released``.

The councils (the regions of ``config/regions.yaml``), day by day:

- day 0 is the initial load: each council's complete merchants list, a year of complaints
  and of inspections, and one round of gift evaluations;
- every day after, each council sends its complete merchants list again (``replace``): about
  0.1% of filings changed (renewals, as many suspensions as reinstatements, as many
  commitments dropped as made), about 0.02% withdrawn and as many new merchants filed, so the
  registry keeps its size; about 0.1% of the list's rows are quarantined (an impossible date),
  and those filings keep their previous row;
- every day, each council sends the complaints received (4 a year per filing) and the
  inspections made (0.4 a year per filing) in the last week, as new rows (``upsert``);
- every seventh day one council, in turn, sends a new round of gift evaluations for a tenth of
  its gift products (``upsert``).

A ``merchants`` size is the number of distinct USCCs; a tenth of the merchants also file in a
second region, so a day's lists hold about 1.1 times that many filings. Everything is drawn
from ``seed`` and the day: the same size, seed and day give the same rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import polars as pl

from bench.lookup_data import usccs
from registry import ledger
from registry.config.contracts import LINEAGE_SCHEMA, Contract, load_contracts
from registry.config.regions import load_regions
from registry.config.settings import COUNCIL_TIMEZONE, Settings
from registry.ingest.normalize import name_matching_key
from registry.ingest.pipeline import PART_NAME
from registry.ingest.rejections import DATE_INVALID
from registry.storage import Storage
from registry.storage.layout import landing_prefix, quarantine_prefix, staged_prefix

# Day 1's as_of; day 0 is the initial load, the day before.
START = date(2025, 12, 1)
# Uploads land from 09:00 in the councils' time zone, one minute apart.
LANDING_TIME = time(9, 0)
SECOND_REGION_SHARE = 0.10
CHANGED_SHARE = 0.001
CHURN_SHARE = 0.0002
QUARANTINED_SHARE = 0.001
COMPLAINTS_PER_FILING_YEAR = 4.0
INSPECTIONS_PER_FILING_YEAR = 0.4
GIFT_PRODUCT_SHARE = 0.5  # of specialty_gift filings, at the initial load
GIFT_ROUND_SHARE = 0.1  # of a council's products, in a later round
GIFT_EVERY_DAYS = 7
EVALUATORS = 5
# Arrivals: a day's complaints and inspections happened in the last week.
ARRIVAL_DAYS = 7

_BRANDS = ["环球", "优选", "臻品", "汇通", "恒信", "鼎盛", "万家", "顺达", "瑞丰", "嘉禾", "佳美",
           "聚源", "百汇", "宏远", "天成", "新创", "康宁", "锦程", "永泰", "盛世"]
_PLACES = list("长江沪苏浙皖金海华东申宁杭合徐温嘉湖扬镇")
_KINDS = ["进口商品有限公司", "贸易有限公司", "国际贸易有限公司", "食品有限公司",
          "跨境电商有限公司", "超市有限公司", "酒业有限公司", "母婴用品有限公司"]
_STORES = ["旗舰店", "进口商品直营店", "体验店", "专卖店"]
_DISTRICTS = ["高新区", "经济开发区", "新城区", "老城区", "滨江区"]
_ROADS = ["中山路", "人民路", "解放路", "建设路", "和平路", "长江路"]
_CATEGORIES = ["food", "wine", "cosmetics", "baby", "health", "apparel", "tea"]
_COUNTRIES = ["FR", "DE", "JP", "KR", "AU", "NZ", "US", "IT", "ES", "GB", "CL", "TH"]
_PRODUCTS = ["进口奶粉", "进口红酒", "进口橄榄油", "进口巧克力", "进口咖啡", "进口爽肤水"]
_DEFECTS = ["菌落总数超标", "标签标识不合格", "二氧化硫超标", "净含量不足"]
_GIFTS = [("龙井茶礼盒", "茶叶"), ("碧螺春礼盒", "茶叶"), ("桂花糕", "糕点"),
          ("丝绸围巾", "丝绸制品"), ("黄山毛峰", "茶叶"), ("绿豆糕", "糕点"),
          ("木雕摆件", "工艺品")]
_FLAGS = ("chinese_label", "traceable", "no_reason_return_7d", "offline_no_reason_return",
          "advance_compensation")


def as_of_day(day: int) -> date:
    """The date day ``day`` is published as of (day 0: the initial load)."""
    return START + timedelta(days=day - 1)


@dataclass(frozen=True)
class Upload:
    """One council file as ingestion leaves it: ``rows`` accepted (the staged columns but the
    lineage), ``quarantined`` the rows it refused (their natural keys and the value at fault,
    as the council wrote them)."""

    dataset: str
    region: str
    mode: str
    rows: pl.DataFrame
    quarantined: pl.DataFrame


def _pick(rng: np.random.Generator, options: Sequence[str], n: int) -> pl.Series:
    return pl.Series(options).gather(rng.integers(0, len(options), n))


def _days_before(day: date, rng: np.random.Generator, n: int, within: int) -> pl.Series:
    """``n`` dates in ``(day - within, day]``."""
    return pl.Series(np.datetime64(day, "D") - rng.integers(0, within, n)).cast(pl.Date)


def _names(rng: np.random.Generator, n: int) -> pl.Series:
    return _pick(rng, _PLACES, n) + _pick(rng, _PLACES, n) + _pick(rng, _BRANDS, n) + _pick(
        rng, _KINDS, n)


def _new_merchants(rng: np.random.Generator, n: int) -> pl.DataFrame:
    """``n`` merchants: valid USCCs (registered in any of the four provinces) and names."""
    codes, _ = usccs(n, rng)
    return pl.DataFrame({
        "uscc": pl.Series(np.ascontiguousarray(codes).view("S18").ravel()).cast(pl.String),
        "merchant_name": _names(rng, n),
    })


class CouncilHistory:
    """The councils' uploads, day after day, for ``merchants`` distinct merchants. Call
    :meth:`uploads` for day 0, 1, 2... in order: each day's lists follow from the day before."""

    def __init__(self, merchants: int, seed: int, settings: Settings) -> None:
        self.seed = seed
        self.contracts: dict[str, Contract] = load_contracts(settings.schemas_dir)
        config = load_regions(settings.config_dir)
        self.regions = sorted(config.regions)
        self._cities = {code: sorted(r.cities) for code, r in config.regions.items()}
        self._division = config.division_regions
        self._values = {dataset: {c.name: list(c.values or {}) for c in contract.columns}
                        for dataset, contract in self.contracts.items()}
        self._merchants = merchants
        self._next_day = 0
        self._filed = dict.fromkeys(self.regions, 0)
        self.lists: dict[str, pl.DataFrame] = {}
        self._products: dict[str, pl.DataFrame] = {}

    def _rng(self, day: int, *stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, day, *stream])

    # -- merchants ----------------------------------------------------------------------------

    def _filings(self, region: str, merchants: pl.DataFrame, rng: np.random.Generator,
                 as_of: date) -> pl.DataFrame:
        """One filing in ``region`` per merchant, as the council's list has it once read."""
        n = merchants.height
        first = self._filed[region]
        self._filed[region] += n
        names = merchants.get_column("merchant_name")
        frame = pl.DataFrame({
            "filing_id": [f"{region}-{i:08d}" for i in range(first, first + n)],
            "uscc": merchants.get_column("uscc"),
            "merchant_name": names,
            "merchant_name_key": name_matching_key(names),
            "store_name": names + _pick(rng, _STORES, n),
            "program": np.where(rng.random(n) < 0.1, "specialty_gift", "imported_goods"),
            "city": _pick(rng, self._cities[region], n),
            "district": _pick(rng, _DISTRICTS, n),
            "address": _pick(rng, _ROADS, n) + pl.Series(rng.integers(1, 999, n)).cast(
                pl.String) + "号",
            "categories": _pick(rng, _CATEGORIES, n),
            "_category": _pick(rng, _CATEGORIES, n),
            **{flag: rng.random(n) < 0.9 for flag in _FLAGS},
            "valid_from": _days_before(as_of - timedelta(days=30), rng, n, 1500),
            "valid_until": _days_before(as_of + timedelta(days=1800), rng, n, 1400),
            "status": rng.choice(["active", "suspended", "revoked"], n, p=[0.94, 0.04, 0.02]),
            "_one_category": rng.random(n) < 0.6,
            "_country": _pick(rng, _COUNTRIES, n),
            "_country2": _pick(rng, _COUNTRIES, n),
            "_no_store": rng.random(n) < 0.5,
        })
        return frame.with_columns(
            store_name=pl.when(~pl.col("_no_store")).then("store_name"),
            categories=pl.when(pl.col("_one_category")).then(pl.concat_list("categories"))
            .otherwise(pl.concat_list("categories", "_category").list.unique().list.sort()),
            origin_countries=pl.when(pl.col("program") == "imported_goods")
            .then(pl.concat_list("_country", "_country2").list.unique().list.sort()),
            region=pl.lit(region),
        ).select(self._columns("merchants"))

    def _columns(self, dataset: str) -> list[str]:
        return [c for c in self.contracts[dataset].staged_schema() if c not in LINEAGE_SCHEMA]

    def _initial_lists(self, rng: np.random.Generator, as_of: date) -> None:
        merchants = _new_merchants(rng, self._merchants)
        home = merchants.get_column("uscc").str.slice(2, 2).replace_strict(self._division)
        second = pl.Series(self.regions).gather(rng.integers(0, len(self.regions),
                                                             merchants.height))
        also = pl.Series(rng.random(merchants.height) < SECOND_REGION_SHARE) & (second != home)
        for region in self.regions:
            chosen = (home == region) | (also & (second == region))
            self.lists[region] = self._filings(region, merchants.filter(chosen), rng, as_of)


    def _next_list(self, region: str, rng: np.random.Generator, as_of: date) -> pl.DataFrame:
        """Yesterday's list with a few filings changed, withdrawn and newly filed. As many
        filings are suspended as reinstated, and as many drop a commitment as make it, so the
        registry keeps its size and its shape."""
        current = self.lists[region].with_row_index("_row")
        n = current.height
        per_kind = max(1, round(n * CHANGED_SHARE / 3))

        def pairs(first: pl.Series, second: pl.Series) -> tuple[np.ndarray, np.ndarray]:
            rows = first.arg_true().to_numpy(), second.arg_true().to_numpy()
            k = min(per_kind // 2 + 1, rows[0].size, rows[1].size)
            return (rng.choice(rows[0], k, replace=False), rng.choice(rows[1], k, replace=False))

        status, traceable = current.get_column("status"), current.get_column("traceable")
        suspended, reinstated = pairs(status == "active", status == "suspended")
        dropped, made = pairs(traceable, ~traceable)
        renewed = rng.choice(n, per_kind, replace=False)
        changes = {"suspended": suspended, "reinstated": reinstated, "dropped": dropped,
                   "made": made, "renewed": renewed}
        change = pl.DataFrame({
            "_row": np.concatenate(list(changes.values())).astype(np.uint32),
            "_change": np.repeat(list(changes), [rows.size for rows in changes.values()]),
        }).unique("_row", keep="first")
        kind = pl.col("_change")
        updated = current.join(change, on="_row", how="left").with_columns(
            status=pl.when(kind == "suspended").then(pl.lit("suspended"))
            .when(kind == "reinstated").then(pl.lit("active")).otherwise("status"),
            traceable=pl.when(kind == "dropped").then(False)
            .when(kind == "made").then(True).otherwise("traceable"),
            valid_until=pl.when(kind == "renewed")
            .then(pl.col("valid_until") + pl.duration(days=365)).otherwise("valid_until"),
        )
        churn = max(1, round(n * CHURN_SHARE))
        withdrawn = pl.Series("_row", rng.choice(n, churn, replace=False).astype(np.uint32))
        kept = updated.filter(~pl.col("_row").is_in(withdrawn.implode())).drop("_row", "_change")
        filed = self._filings(region, _new_merchants(rng, churn), rng, as_of)
        return pl.concat([kept, filed])

    def _merchants_upload(self, region: str, rng: np.random.Generator) -> Upload:
        """The complete list, less the rows ingestion would quarantine (an impossible date)."""
        listed = self.lists[region]
        bad = rng.random(listed.height) < QUARANTINED_SHARE
        quarantined = listed.filter(bad).select(
            pl.col("filing_id", "uscc", "merchant_name", "region"),
            valid_until=pl.lit("2026-02-30"))
        return Upload("merchants", region, "replace", listed.filter(~bad), quarantined)

    # -- complaints, inspections, gift evaluations ----------------------------------------------

    def _complaints(self, region: str, rng: np.random.Generator, as_of: date, n: int,
                    within: int, day: int) -> pl.DataFrame:
        values = self._values["complaints"]
        frame = pl.DataFrame({
            "complaint_id": [f"{region}-C{day:04d}-{i:07d}" for i in range(n)],
            "uscc": self._listed_usccs(region, rng, n),
            "received_on": _days_before(as_of, rng, n, within),
            "category": _pick(rng, values["category"], n),
            "status": rng.choice(values["status"], n, p=[0.6, 0.15, 0.25]),
            "_waited": rng.random(n),
            "_recovered": np.where(rng.random(n) < 0.5, np.round(rng.uniform(0, 500, n), 2),
                                   np.nan),
        })
        resolved = pl.col("status") == "resolved"
        # Resolved between receipt and as_of.
        waited = (pl.col("_waited") * (pl.lit(as_of) - pl.col("received_on")).dt.total_days())
        return frame.with_columns(
            resolved_on=pl.when(resolved).then(
                pl.col("received_on") + pl.duration(days=waited.floor().cast(pl.Int64))),
            recovered_amount_cny=pl.when(resolved).then(pl.col("_recovered").fill_nan(None)),
            region=pl.lit(region),
        ).select(self._columns("complaints"))

    def _inspections(self, region: str, rng: np.random.Generator, as_of: date, n: int,
                     within: int, day: int) -> pl.DataFrame:
        failed = pl.col("result") == "fail"
        return pl.DataFrame({
            "inspection_id": [f"{region}-I{day:04d}-{i:07d}" for i in range(n)],
            "uscc": self._listed_usccs(region, rng, n),
            "product_name": _pick(rng, _PRODUCTS, n),
            "tested_on": _days_before(as_of, rng, n, within),
            "result": np.where(rng.random(n) < 0.05, "fail", "pass"),
            "_serious": rng.random(n) < 0.2,
            "_defect": _pick(rng, _DEFECTS, n),
        }).with_columns(
            severity=pl.when(failed).then(pl.when("_serious").then(pl.lit("serious"))
                                          .otherwise(pl.lit("minor"))),
            defect_items=pl.when(failed).then("_defect"),
            region=pl.lit(region),
        ).select(self._columns("inspections"))

    def _listed_usccs(self, region: str, rng: np.random.Generator, n: int) -> pl.Series:
        codes = self.lists[region].get_column("uscc")
        return codes.gather(rng.integers(0, codes.len(), n))

    def _gift_products(self, region: str, rng: np.random.Generator) -> pl.DataFrame:
        gift = self.lists[region].filter(pl.col("program") == "specialty_gift")
        chosen = gift.filter(pl.Series(rng.random(gift.height) < GIFT_PRODUCT_SHARE))
        n = chosen.height
        kind = rng.integers(0, len(_GIFTS), n)
        return pl.DataFrame({
            "product_id": [f"{region}-P{i:07d}" for i in range(n)],
            "uscc": chosen.get_column("uscc"),
            "product_name": chosen.get_column("city") + pl.Series(
                [_GIFTS[k][0] for k in kind], dtype=pl.String),
            "origin_city": chosen.get_column("city"),
            "category": pl.Series([_GIFTS[k][1] for k in kind], dtype=pl.String),
        })

    def _evaluations(self, region: str, products: pl.DataFrame, round_name: str,
                     rng: np.random.Generator) -> pl.DataFrame:
        evaluators = pl.DataFrame({"evaluator_id": [f"E{k}" for k in range(1, EVALUATORS + 1)]})
        rows = products.join(evaluators, how="cross")
        n = rows.height

        def score() -> np.ndarray:
            return np.clip(np.round(rng.normal(7.5, 1.2, n), 1), 0, 10)

        return rows.with_columns(
            evaluation_round=pl.lit(round_name), quality=score(), culture=score(),
            packaging=score(), value=score(), region=pl.lit(region),
        ).select(self._columns("gift_evaluations"))

    # -- a day --------------------------------------------------------------------------------

    def uploads(self, day: int) -> list[Upload]:
        """Every upload of day ``day`` (0: the initial load), in landing order."""
        if day != self._next_day:
            raise ValueError(f"day {day} asked for, day {self._next_day} comes next")
        self._next_day += 1
        as_of = as_of_day(day)
        rng = self._rng(day)
        if day == 0:
            self._initial_lists(rng, as_of)
        else:
            self.lists = {r: self._next_list(r, rng, as_of) for r in self.regions}
        out: list[Upload] = []
        # The initial load holds a year of complaints and inspections; a later day, one day's.
        days_sent = 365 if day == 0 else 1
        for i, region in enumerate(self.regions):
            rng = self._rng(day, i)
            yearly = self.lists[region].height * days_sent / 365
            within = 365 if day == 0 else ARRIVAL_DAYS
            out.append(self._merchants_upload(region, rng))
            complaints = max(1, round(yearly * COMPLAINTS_PER_FILING_YEAR))
            out.append(Upload("complaints", region, "upsert", self._complaints(
                region, rng, as_of, complaints, within, day), self._nothing("complaints")))
            inspections = max(1, round(yearly * INSPECTIONS_PER_FILING_YEAR))
            out.append(Upload("inspections", region, "upsert", self._inspections(
                region, rng, as_of, inspections, within, day), self._nothing("inspections")))
            if day == 0:
                self._products[region] = self._gift_products(region, rng)
                round_name, products = f"{as_of.year}", self._products[region]
            elif day % GIFT_EVERY_DAYS == 0 and region == self.regions[
                    (day // GIFT_EVERY_DAYS) % len(self.regions)]:
                catalogue = self._products[region]
                products = catalogue.filter(pl.Series(rng.random(catalogue.height)
                                                      < GIFT_ROUND_SHARE))
                round_name = f"{as_of:%Y%m%d}"
            else:
                continue
            if products.height:
                out.append(Upload("gift_evaluations", region, "upsert",
                                  self._evaluations(region, products, round_name, rng),
                                  self._nothing("gift_evaluations")))
        return out

    def _nothing(self, dataset: str) -> pl.DataFrame:
        """No quarantined rows: an empty frame of the dataset's natural-key columns."""
        return pl.DataFrame(schema=dict.fromkeys(self.contracts[dataset].natural_key,
                                                 pl.String))


def stage_upload(storage: Storage, upload: Upload, contract: Contract, *, as_of: date,
                 seed: int, landing: int) -> ledger.BatchRecord:
    """Write ``upload`` as ingestion does, staged and quarantined Parquet first, then commit it
    with its batch record (status ``released``). It lands on ``as_of`` at
    :data:`LANDING_TIME` plus ``landing`` minutes, council time. Returns the record."""
    landed_at = datetime.combine(as_of, LANDING_TIME, COUNCIL_TIMEZONE).astimezone(UTC) + \
        timedelta(minutes=landing)
    source_key = f"{landing_prefix(upload.region, upload.dataset)}{as_of:%Y%m%d}.csv"
    # Stands for the hash of the council's file: one per upload, never equal to another's.
    sha256 = hashlib.sha256(f"{seed}/{source_key}/{landed_at}".encode()).hexdigest()
    batch_id = ledger.batch_id_for(landed_at, sha256)
    ingested_at = landed_at + timedelta(minutes=1)

    def with_lineage(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(
            pl.lit(source_key).alias("_source_key"), pl.lit(sha256).alias("_sha256"),
            pl.int_range(2, pl.len() + 2, dtype=pl.Int64).alias("_source_row"),
            pl.lit(batch_id).alias("_batch_id"),
            pl.lit(ingested_at).cast(LINEAGE_SCHEMA["_ingested_at"]).alias("_ingested_at"))

    schema = contract.staged_schema()
    staged = with_lineage(upload.rows).select(pl.col(c).cast(t) for c, t in schema.items())
    quarantined = with_lineage(upload.quarantined)
    staged_key = staged_prefix(upload.dataset, upload.region, batch_id) + PART_NAME
    quarantine_key = quarantine_prefix(upload.dataset, upload.region, batch_id) + PART_NAME
    storage.write_parquet(staged, staged_key)
    storage.write_parquet(quarantined, quarantine_key)
    errors = ({DATE_INVALID: quarantined.height} if quarantined.height else {})
    return ledger.commit_batch(storage, ledger.BatchRecord(
        batch_id=batch_id, dataset=upload.dataset, region=upload.region, mode=upload.mode,
        sha256=sha256, source_key=source_key, landed_at=landed_at, ingested_at=ingested_at,
        created_at=ingested_at, rows_in=staged.height + quarantined.height,
        accepted=staged.height, quarantined=quarantined.height, status="released",
        contract_version=contract.version, staged_key=staged_key, quarantine_key=quarantine_key,
        file=source_key.rsplit("/", 1)[-1], format="csv", encoding="utf-8",
        error_counts=errors,
    ))
