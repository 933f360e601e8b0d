"""Realistic council uploads for the demo (``registry demo``) and the benchmark (``bench/``).

What the files look like, and why:

- every region of ``config/regions.yaml`` uploads all four datasets, split into several files
  (one for a ``replace``-mode dataset: such an upload is the council's complete list);
- CSV in UTF-8, GB18030 with a title row (an old Excel export), UTF-8 with a BOM and semicolons
  (Excel's "CSV UTF-8" in a European locale), and XLSX with a title row and a notes footer;
  headers in Chinese, or in English for some files, in the contract's order or shuffled;
- Chinese merchant names built from city, brand, trade and legal form, some written in
  Traditional characters, and merchants filed in a second region under a name variant;
- valid USCCs (GB 32100 MOD 31 and GB 11714 check characters, from :mod:`registry.ingest.uscc`),
  unique per merchant; the division code is the region's, except for about 3% of merchants
  registered in another region of the alliance;
- dates in the four accepted spellings, booleans as 是/否, Y/N, 1/0, true/false or √/×,
  countries as Chinese names, ISO codes or English names;
- complaints skewed onto a few merchants, inspections passing about 90% of the time with some
  serious failures, gift products scored by 3-9 evaluators;
- some suspended and revoked filings, among them merchants revoked in one region and filed in
  another;
- about 3% bad rows of many kinds (see ``DEFECTS``), each breaking exactly one rule, so the
  number of rows the ingest must reject is known exactly (``SampleFile.rejected``).

Every value is a pure function of (seed, dataset, row index): rows are produced in chunks of
numpy arrays and written straight to their file, so memory stays bounded at any size (the
benchmark's tier L has 40M complaints) and the output does not depend on the chunk size.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import cached_property
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl
import xlsxwriter
from opencc import OpenCC

from registry.config.contracts import Contract
from registry.config.regions import Region, RegionConfig
from registry.ingest.uscc import USCC_ALPHABET, mod31_check_characters, org_check_characters
from registry.storage.layout import DATASETS

DEFAULT_SEED = 20241130
# Bumped whenever the same arguments would give different files (the benchmark caches by it).
SAMPLES_VERSION = 5
FORMATS = ("csv", "csv-gb18030", "csv-bom", "xlsx")
_EXTENSIONS = {"csv": "csv", "csv-gb18030": "csv", "csv-bom": "csv", "xlsx": "xlsx"}
# Share of bad rows, and of merchants filed in a second region / registered in another one.
BAD_FRACTION = 0.03
_CROSS_FILING = 0.05
_CROSS_REGISTRATION = 0.03

# What each kind of bad row breaks, and the code the ingest must give it (the rejection codes of
# registry.ingest.rejections).
DEFECTS: dict[str, dict[str, str]] = {
    "merchants": {
        "uscc_check_character": "USCC_INVALID",
        "org_code_check_character": "USCC_INVALID",
        "impossible_date": "DATE_INVALID",
        "valid_until_before_valid_from": "DATE_ORDER_INVALID",
        "city_of_another_region": "CITY_NOT_IN_REGION",
        "unknown_program": "ENUM_INVALID",
        "unknown_status": "ENUM_INVALID",
        "unknown_yes_no": "BOOLEAN_INVALID",
        "unknown_country": "COUNTRY_UNKNOWN",
        "imported_without_origin": "CONDITIONAL_REQUIRED_MISSING",
        "bad_phone": "PHONE_INVALID",
        "missing_name": "REQUIRED_MISSING",
        "duplicate_key": "DUPLICATE_KEY",
    },
    "complaints": {
        "uscc_check_character": "USCC_INVALID",
        "org_code_check_character": "USCC_INVALID",
        "impossible_date": "DATE_INVALID",
        "received_in_future": "DATE_IN_FUTURE",
        "resolved_without_date": "CONDITIONAL_REQUIRED_MISSING",
        "resolved_before_received": "DATE_ORDER_INVALID",
        "negative_amount": "VALUE_OUT_OF_RANGE",
        "amount_not_a_number": "NUMBER_INVALID",
        "unknown_category": "ENUM_INVALID",
        "bad_phone": "PHONE_INVALID",
        "duplicate_key": "DUPLICATE_KEY",
    },
    "inspections": {
        "uscc_check_character": "USCC_INVALID",
        "org_code_check_character": "USCC_INVALID",
        "impossible_date": "DATE_INVALID",
        "tested_in_future": "DATE_IN_FUTURE",
        "unknown_result": "ENUM_INVALID",
        "fail_without_severity": "CONDITIONAL_REQUIRED_MISSING",
        "missing_product_name": "REQUIRED_MISSING",
        "duplicate_key": "DUPLICATE_KEY",
    },
    "gift_evaluations": {
        "uscc_check_character": "USCC_INVALID",
        "org_code_check_character": "USCC_INVALID",
        "score_out_of_range": "VALUE_OUT_OF_RANGE",
        "score_not_a_number": "NUMBER_INVALID",
        "missing_evaluator": "REQUIRED_MISSING",
        "duplicate_key": "DUPLICATE_KEY",
    },
}

# -- vocabulary ---------------------------------------------------------------------------------
_BRANDS = [
    "瑞丰", "华润", "恒隆", "久光", "金鹰", "永辉", "联华", "星光", "东方", "新世纪", "百联",
    "大洋",
    "银泰", "万象", "宏图", "盛达", "嘉华", "鼎丰", "富邦", "锦江", "海鸥", "长城", "天虹", "国泰",
    "汇丰", "福源", "鸿运", "祥和", "荣昌", "利群", "华联", "中兴", "广源", "德福", "金桥", "新华",
    "万达", "龙湖", "环球", "四季",
]
_TRADES_IMPORTED = [
    "进口商品贸易", "国际贸易", "跨境电子商务", "商贸", "进出口", "供应链管理", "百货", "超市",
    "酒业", "母婴用品", "化妆品", "食品",
]
_TRADES_GIFT = ["食品", "茶业", "丝绸", "工艺品", "土特产", "糕点", "酒业"]
# (legal form, share) for kind 91 enterprises; kind 92 (个体工商户) trade as 商行 or 经营部.
_LEGAL_FORMS = ["有限公司", "有限责任公司", "股份有限公司"]
_SHOP_FORMS = ["商行", "经营部"]
_STORE_KINDS = ["旗舰店", "进口商品直营店", "体验店", "专卖店", "一店", "二店"]
_ROADS = ["中山路", "人民路", "解放路", "建设路", "和平路", "南京路", "淮海路", "长江路", "黄山路",
          "延安路", "文化路", "新华路", "胜利路", "环城路"]
_DISTRICT_KINDS = ["高新区", "经济开发区", "新城区", "老城区", "滨江区"]
_SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高")
_TITLES = ["经理", "先生", "女士", "主管"]
_CATEGORIES_IMPORTED = ["食品", "酒类", "化妆品", "母婴用品", "保健品", "服饰", "箱包", "家电",
                        "数码产品", "钟表", "珠宝首饰", "日用品"]
_CATEGORIES_GIFT = ["糕点", "茶叶", "丝绸制品", "工艺品", "土特产", "肉制品"]
# (ISO code, Chinese name, English name): all in schemas/reference/countries.yaml.
_COUNTRIES = [
    ("JP", "日本", "Japan"), ("KR", "韩国", "South Korea"), ("FR", "法国", "France"),
    ("DE", "德国", "Germany"), ("IT", "意大利", "Italy"), ("AU", "澳大利亚", "Australia"),
    ("NZ", "新西兰", "New Zealand"), ("US", "美国", "USA"), ("GB", "英国", "UK"),
    ("ES", "西班牙", "Spain"), ("TH", "泰国", "Thailand"), ("CL", "智利", "Chile"),
    ("CH", "瑞士", "Switzerland"), ("NL", "荷兰", "Netherlands"), ("MY", "马来西亚", "Malaysia"),
    ("VN", "越南", "Vietnam"), ("CA", "加拿大", "Canada"), ("BE", "比利时", "Belgium"),
]
_SEPARATORS = ["、", ";", ",", "/"]
# (true, false) spellings a council's template uses; a file keeps mostly to one.
_YES_NO = [("是", "否"), ("Y", "N"), ("1", "0"), ("true", "false"), ("√", "×"), ("有", "无")]
_COMPLAINT_CATEGORIES = (["quality", "after_sales", "false_advertising", "contract", "price",
                          "safety", "other"], [0.30, 0.25, 0.10, 0.10, 0.10, 0.05, 0.10])
_COMPLAINT_STATUSES = (["resolved", "unresolved", "in_progress"], [0.78, 0.12, 0.10])
_INSPECTED_PRODUCTS = ["进口奶粉", "进口红酒", "进口橄榄油", "进口巧克力", "进口咖啡", "进口爽肤水",
                       "进口面霜", "进口饼干", "进口牛排", "进口坚果", "进口奶酪", "进口婴儿米粉",
                       "进口鱼油", "进口洗发水", "进口葡萄酒", "进口蜂蜜"]
_DEFECT_ITEMS = ["菌落总数超标", "标签标识不合格", "二氧化硫超标", "铅含量超标", "净含量不足",
                 "无中文标签", "过氧化值超标", "大肠菌群超标"]
# (gift product, category)
_GIFTS = [("龙井茶礼盒", "茶叶"), ("碧螺春礼盒", "茶叶"), ("桂花糕", "糕点"), ("青团礼盒", "糕点"),
          ("酥饼", "糕点"), ("盐水鸭", "肉制品"), ("火腿礼盒", "肉制品"), ("酱鸭", "肉制品"),
          ("丝绸围巾", "丝绸制品"), ("刺绣团扇", "工艺品"), ("紫砂壶", "工艺品"),
          ("黄酒礼盒", "酒类"), ("毛峰茶礼盒", "茶叶"), ("麻饼", "糕点"), ("臭鳜鱼礼盒", "肉制品")]
_IMPOSSIBLE_DATES = ["2023-02-30", "2024-13-01", "2024年2月30日", "31/12/2024", "2024.00.10"]
_EXCEL_EPOCH_OFFSET = 25569  # days from 1899-12-30 (Excel's day 0) to 1970-01-01

_S2T = OpenCC("s2t")


# -- deterministic draws -----------------------------------------------------------------------
_MASK64 = (1 << 64) - 1


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijection of uint64 with good avalanche."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class _Draws:
    """Random draws that are a pure function of (seed, scope, stream, index): row ``i`` gets the
    same values whichever chunk it is generated in."""

    def __init__(self, seed: int, scope: str):
        self._base = (seed * 0x9E3779B1 + zlib.crc32(scope.encode())) & _MASK64

    def _bits(self, index: np.ndarray, stream: str) -> np.ndarray:
        salt = np.uint64((self._base ^ (zlib.crc32(stream.encode()) << 29)) & _MASK64)
        return _mix64(np.asarray(index).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + salt)

    def uniform(self, index: np.ndarray, stream: str) -> np.ndarray:
        return (self._bits(index, stream) >> np.uint64(11)).astype(np.float64) * 2.0**-53

    def integers(self, index: np.ndarray, stream: str, n: int | np.ndarray) -> np.ndarray:
        return ((self._bits(index, stream) >> np.uint64(1)) % np.asarray(n, dtype=np.uint64)
                ).astype(np.int64)

    def choice(self, index: np.ndarray, stream: str, weights: Sequence[float]) -> np.ndarray:
        edges = np.cumsum(weights) / np.sum(weights)
        return np.minimum(np.searchsorted(edges, self.uniform(index, stream), side="right"),
                          len(weights) - 1)

    def normal(self, index: np.ndarray, stream: str) -> np.ndarray:
        u1 = np.maximum(self.uniform(index, stream + ".1"), 1e-12)
        u2 = self.uniform(index, stream + ".2")
        return np.sqrt(-2 * np.log(u1)) * np.cos(2 * np.pi * u2)


def _pick(options: Sequence[str], index: np.ndarray) -> pl.Series:
    return pl.Series(list(options), dtype=pl.String).gather(index)


def _where(mask: np.ndarray, then: pl.Series | str | None, otherwise: pl.Series) -> pl.Series:
    value = then if isinstance(then, pl.Series) else pl.lit(then, dtype=pl.String)
    return pl.select(pl.when(pl.Series(mask)).then(value).otherwise(otherwise)).to_series()


def _concat(*parts: pl.Series | str) -> pl.Series:
    exprs = [pl.lit(p) if isinstance(p, str | pl.Series) else p for p in parts]
    return pl.select(pl.concat_str(exprs)).to_series()


def _typed_years_ahead(today_days: int, offset: np.ndarray) -> np.ndarray:
    """Dates a decade ahead (a mistyped year: 2036 for 2026): in the future whenever the files
    are ingested, even files generated for a fixed past day, as the benchmark's are."""
    return today_days + 3650 + offset


def _dates_written(days: np.ndarray, style: np.ndarray) -> pl.Series:
    """Days since 1970-01-01 as text in the four accepted spellings (style 0-3)."""
    d = pl.Series(days.astype("datetime64[D]"))
    serial = pl.Series(days + _EXCEL_EPOCH_OFFSET).cast(pl.String)
    s = pl.Series(style)
    return pl.select(
        pl.when(s == 0).then(d.dt.strftime("%Y-%m-%d"))
        .when(s == 1).then(d.dt.strftime("%Y/%-m/%-d"))
        .when(s == 2).then(d.dt.strftime("%Y年%-m月%-d日"))
        .otherwise(serial)
    ).to_series()


# -- the world the uploads describe ---------------------------------------------------------------


@dataclass(frozen=True)
class SampleSizes:
    """Rows per dataset, over all regions (split evenly between them)."""

    merchants: int
    complaints: int
    inspections: int
    gift_evaluations: int

    def of(self, dataset: str) -> int:
        return getattr(self, dataset)

    @property
    def total(self) -> int:
        return sum(self.of(d) for d in DATASETS)


@dataclass(frozen=True)
class SampleFile:
    """One generated upload, and what the ingest must make of it."""

    region: str
    dataset: str
    path: Path
    format: str
    rows: int
    rejected: int  # rows that break a rule: exactly these must go to quarantine
    defects: dict[str, int] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return self.rows - self.rejected


def _split(total: int, parts: int) -> np.ndarray:
    """Boundaries of ``parts`` near-equal contiguous ranges of ``total`` rows."""
    return np.array([total * i // parts for i in range(parts + 1)], dtype=np.int64)


@dataclass
class _World:
    """Merchants, their codes and names, as functions of the merchant (filing row) index."""

    seed: int
    today: date
    regions: list[Region]
    merchant_rows: int

    def __post_init__(self) -> None:
        self.draw = _Draws(self.seed, "merchants")
        self.bounds = _split(self.merchant_rows, len(self.regions))
        self.today_days = int(np.datetime64(self.today, "D").astype(np.int64))
        self.cities = [list(r.cities) for r in self.regions]

    # which region, city and merchant a filing row is

    def region_of(self, j: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.bounds, j, side="right") - 1

    def is_cross_filing(self, j: np.ndarray) -> np.ndarray:
        """Rows filed by a merchant whose home filing is in another region."""
        if len(self.regions) < 2:
            return np.zeros(len(j), dtype=bool)
        return self.draw.uniform(j, "cross") < _CROSS_FILING

    def merchant_of(self, j: np.ndarray) -> np.ndarray:
        """The merchant (the index of its home filing row) a filing row belongs to."""
        j = np.asarray(j, dtype=np.int64)
        cross = self.is_cross_filing(j)
        if not cross.any():
            return j
        home = self.region_of(j)
        other = (home + 1 + self.draw.integers(j, "cross.region", len(self.regions) - 1)
                 ) % len(self.regions)
        size = self.bounds[other + 1] - self.bounds[other]
        target = self.bounds[other] + self.draw.integers(j, "cross.row", np.maximum(size, 1))
        return np.where(cross, target, j)

    def city_of(self, m: np.ndarray) -> np.ndarray:
        """City index (within the home region) of a merchant: the capital is the busiest."""
        n_cities = np.array([len(c) for c in self.cities])[self.region_of(m)]
        capital = self.draw.uniform(m, "city.capital") < 0.35
        return np.where(capital, 0, self.draw.integers(m, "city", n_cities))

    def is_gift(self, m: np.ndarray) -> np.ndarray:
        return self.draw.uniform(m, "program") < 0.2

    def kind_of(self, m: np.ndarray) -> np.ndarray:
        """0: enterprise (91), 1: individual business (92)."""
        return (self.draw.uniform(m, "kind") < 0.08).astype(np.int64)

    # codes

    def usccs(self, m: np.ndarray, *, wrong_mod31: np.ndarray | None = None,
              wrong_org: np.ndarray | None = None) -> pl.Series:
        """Each merchant's USCC: unique (the organisation code is a bijection of ``m``), its
        division code that of its registered region, mostly the home region."""
        m = np.asarray(m, dtype=np.int64)
        n = len(m)
        home = self.region_of(m)
        moved = (self.draw.uniform(m, "registered") < _CROSS_REGISTRATION) & (
            len(self.regions) > 1)
        registered = np.where(
            moved,
            (home + 1 + self.draw.integers(m, "registered.region", max(len(self.regions) - 1, 1)))
            % len(self.regions),
            home,
        )
        n_cities = np.array([len(c) for c in self.cities])[registered]
        city = np.where(moved, self.draw.integers(m, "registered.city", n_cities), self.city_of(m))
        province = np.array([int(r.division_code) for r in self.regions])[registered]
        district = 1 + self.draw.integers(m, "district", 18)
        division = province * 10_000 + (city + 1) * 100 + district
        codes = np.zeros((n, 18), dtype=np.uint8)
        codes[:, 0] = ord("9")
        codes[:, 1] = np.where(self.kind_of(m) == 1, ord("2"), ord("1"))
        for i in range(6):
            codes[:, 2 + i] = ord("0") + division // 10 ** (5 - i) % 10
        # GB 11714 bodies: eight digits (the older codes) or "MA" and six characters (codes
        # issued since 2015), both from one bijection of m below 10^8, so no two merchants
        # share a code.
        serial = (np.asarray(m, dtype=np.int64) * 1_234_577 + 7_654_321) % 100_000_000
        alphabet = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
        new_style = self.draw.uniform(m, "org.style") < 0.45
        for i in range(8):
            digit = ord("0") + serial // 10 ** (7 - i) % 10
            if i < 2:
                letter = ord("M") if i == 0 else ord("A")
            else:
                letter = alphabet[serial // 31 ** (7 - i) % 31]
            codes[:, 8 + i] = np.where(new_style, letter, digit)
        codes[:, 16] = org_check_characters(codes[:, 8:16])
        if wrong_org is not None:
            # Another character that is not the right one; MOD 31 is then computed over it, so
            # only the GB 11714 check fails (python-stdnum would accept such a code).
            codes[:, 16] = np.where(wrong_org, np.where(codes[:, 16] == ord("1"), ord("2"),
                                                        ord("1")), codes[:, 16])
        codes[:, 17] = mod31_check_characters(codes[:, :17])
        if wrong_mod31 is not None:
            # Seven places further along the alphabet: always a wrong check character.
            position = np.zeros(256, dtype=np.int64)
            position[alphabet] = np.arange(31)
            codes[:, 17] = np.where(wrong_mod31, alphabet[(position[codes[:, 17]] + 7) % 31],
                                    codes[:, 17])
        return pl.Series(codes.view("S18").ravel()).cast(pl.String)

    # names

    @cached_property
    def _city_names(self) -> tuple[list[str], list[str]]:
        flat = [c for cities in self.cities for c in cities]
        return flat, [_S2T.convert(c) for c in flat]

    def names(self, m: np.ndarray, traditional: np.ndarray) -> pl.Series:
        """Legal names, e.g. 苏州瑞丰国际贸易有限公司, optionally in Traditional characters."""
        offsets = np.cumsum([0] + [len(c) for c in self.cities])
        city = offsets[self.region_of(m)] + self.city_of(m)
        gift = self.is_gift(m)
        trade_imported = self.draw.integers(m, "trade", len(_TRADES_IMPORTED))
        trade_gift = self.draw.integers(m, "trade", len(_TRADES_GIFT))
        brand = self.draw.integers(m, "brand", len(_BRANDS))
        legal = self.draw.choice(m, "legal", [0.8, 0.12, 0.08])
        shop = self.draw.integers(m, "shop", len(_SHOP_FORMS))
        individual = self.kind_of(m) == 1
        out = []
        for convert in (lambda s: s, _S2T.convert):
            cities = self._city_names[0] if convert is not _S2T.convert else self._city_names[1]
            trade = _where(gift, _pick([convert(t) for t in _TRADES_GIFT], trade_gift),
                           _pick([convert(t) for t in _TRADES_IMPORTED], trade_imported))
            form = _where(individual, _pick([convert(s) for s in _SHOP_FORMS], shop),
                          _pick([convert(f) for f in _LEGAL_FORMS], legal))
            out.append(_concat(_pick(cities, city), _pick([convert(b) for b in _BRANDS], brand),
                               trade, form))
        return _where(traditional, out[1], out[0])


# -- one chunk of rows per dataset -----------------------------------------------------------------


@dataclass(frozen=True)
class _FileSpec:
    region_index: int
    dataset: str
    start: int  # first row (global index within the dataset)
    end: int
    english: bool
    yes_no: int


@dataclass
class _Chunk:
    frame: pl.DataFrame  # canonical column names, all String
    defects: np.ndarray  # defect index per row, -1 for a clean row
    rejected: int


def _defect_kinds(draw: _Draws, rows: np.ndarray, dataset: str, spec: _FileSpec,
                  bad_fraction: float, usable: Callable[[np.ndarray], np.ndarray] | None = None
                  ) -> np.ndarray:
    """Defect index per row (-1: clean). A duplicate needs a clean previous row in the same
    file (its partner, which is then rejected too); otherwise the row gets a bad check
    character instead."""
    kinds = list(DEFECTS[dataset])
    bad = draw.uniform(rows, "bad") < bad_fraction
    kind = np.where(bad, draw.integers(rows, "defect", len(kinds)), -1)
    dup = kinds.index("duplicate_key")
    previous = rows - 1
    previous_clean = draw.uniform(previous, "bad") >= bad_fraction
    ok = (rows > spec.start) & previous_clean
    if usable is not None:
        ok &= usable(rows)
    return np.where((kind == dup) & ~ok, 0, kind)


def _rejected_count(kind: np.ndarray, dataset: str) -> int:
    dup = list(DEFECTS[dataset]).index("duplicate_key")
    return int((kind >= 0).sum() + (kind == dup).sum())


def _is(kind: np.ndarray, dataset: str, name: str) -> np.ndarray:
    return kind == list(DEFECTS[dataset]).index(name)


def _enum_written(contract: Contract, column: str, canonical: pl.Series, english: bool,
                  variety: np.ndarray) -> pl.Series:
    """Enum values as a council writes them: the canonical English value in an English file,
    else one of the Chinese aliases (mostly the first)."""
    if english:
        return canonical
    values = contract.by_name[column].values or {}
    out = canonical
    for value, aliases in values.items():
        chinese = [a for a in aliases if not a.isascii()] or [value]
        alias = np.where(variety < 0.85, 0, np.minimum((variety * 10).astype(int) % len(chinese),
                                                        len(chinese) - 1))
        out = _where((canonical == value).to_numpy(), _pick(chinese, alias), out)
    return out


def _yes_no(draw: _Draws, rows: np.ndarray, stream: str, p_true: float, style: int) -> pl.Series:
    truth = draw.uniform(rows, stream) < p_true
    # A council mostly keeps to its template's spelling; some cells are typed otherwise.
    own = draw.uniform(rows, stream + ".style") < 0.9
    styles = np.where(own, style, draw.integers(rows, stream + ".other", len(_YES_NO)))
    yes = _pick([y for y, _ in _YES_NO], styles)
    no = _pick([n for _, n in _YES_NO], styles)
    return _where(truth, yes, no)


def _phones(draw: _Draws, rows: np.ndarray, stream: str) -> pl.Series:
    mobile = _concat(
        _pick(["13", "15", "18", "17", "19"], draw.integers(rows, stream + ".p", 5)),
        pl.Series(draw.integers(rows, stream + ".n", 10**9)).cast(pl.String).str.zfill(9),
    )
    landline = _concat(
        _pick(["021-", "025-", "0512-", "0571-", "0574-", "0551-"],
              draw.integers(rows, stream + ".a", 6)),
        pl.Series(draw.integers(rows, stream + ".l", 10**8)).cast(pl.String).str.zfill(8),
    )
    return _where(draw.uniform(rows, stream + ".kind") < 0.75, mobile, landline)


def _people(draw: _Draws, rows: np.ndarray, stream: str) -> pl.Series:
    return _concat(_pick(_SURNAMES, draw.integers(rows, stream + ".s", len(_SURNAMES))),
                   _pick(_TITLES, draw.integers(rows, stream + ".t", len(_TITLES))))


def _list_written(draw: _Draws, rows: np.ndarray, stream: str, options: Sequence[str],
                  most: int) -> pl.Series:
    """1..most distinct items from ``options``, joined by one of the accepted separators."""
    count = 1 + draw.integers(rows, stream + ".count", most)
    first = draw.integers(rows, stream + ".first", len(options))
    step = 1 + draw.integers(rows, stream + ".step", len(options) - 1)
    separator = _pick(_SEPARATORS, draw.integers(rows, stream + ".sep", len(_SEPARATORS)))
    items = [_pick(options, (first + k * step) % len(options)) for k in range(most)]
    out = items[0]
    for k in range(1, most):
        out = _where(count > k, _concat(out, separator, items[k]), out)
    return out


class _Generator:
    def __init__(self, world: _World, contracts: Mapping[str, Contract], bad_fraction: float):
        self.world = world
        self.contracts = contracts
        self.bad_fraction = bad_fraction
        self.draws = {d: _Draws(world.seed, d) for d in DATASETS}

    # merchants ----------------------------------------------------------------------------

    def _status(self, rows: np.ndarray) -> np.ndarray:
        """Each filing row's status: 0 active, 1 suspended, 2 revoked (drawn per merchant and
        home or branch filing)."""
        m = self.world.merchant_of(rows)
        return self.draws["merchants"].choice(m * 2 + (m != rows), "status", [0.93, 0.03, 0.04])

    def merchants(self, spec: _FileSpec, rows: np.ndarray) -> _Chunk:
        w, draw, contract = self.world, self.draws["merchants"], self.contracts["merchants"]
        region = w.regions[spec.region_index]
        # A planted duplicate differs from its partner in every column but the key; both are
        # active, so that neither settles the copies (a copy that pauses or ends a filing is
        # read: registry.ingest.validation) and both are refused, as counted.
        kind = _defect_kinds(draw, rows, "merchants", spec, self.bad_fraction,
                             usable=lambda r: (self._status(r) == 0)
                             & (self._status(np.maximum(r - 1, 0)) == 0))
        if len(w.regions) == 1:
            # With one region there is no other region's city to write: a bad check character
            # takes that defect's place, so every row counted as rejected really is.
            kind = np.where(_is(kind, "merchants", "city_of_another_region"), 0, kind)
        m = w.merchant_of(rows)
        cross = m != rows
        filing_id = _concat(f"{region.code}-BA-", pl.Series(rows).cast(pl.String).str.zfill(8))
        previous_id = _concat(f"{region.code}-BA-",
                              pl.Series(rows - 1).cast(pl.String).str.zfill(8))
        filing_id = _where(_is(kind, "merchants", "duplicate_key"), previous_id, filing_id)

        # The filing's city is in the uploading region: the merchant's own city at home, a
        # branch city of this region when the merchant's home filing is elsewhere.
        cities = w.cities[spec.region_index]
        own_city = np.where(cross, draw.integers(rows, "branch.city", len(cities)), w.city_of(m))
        # Mostly the canonical name, else one of its aliases (上海市, Shanghai, Taizhou JS).
        aliases = [[*region.cities[c]] or [c] for c in cities]
        flat = [a for names in aliases for a in names]
        offsets = np.cumsum([0] + [len(a) for a in aliases])[:-1]
        counts = np.array([len(a) for a in aliases])
        alias = offsets[own_city] + draw.integers(rows, "city.alias.which", counts[own_city])
        city = _where(draw.uniform(rows, "city.alias") < 0.3, _pick(flat, alias),
                      _pick(cities, own_city))
        district = _concat(_pick(cities, own_city),
                           _pick(_DISTRICT_KINDS, draw.integers(rows, "district", 5)))

        # Name variants: a merchant filed in a second region is written there in Traditional
        # characters or under another legal form; a few home filings are Traditional too.
        traditional = np.where(cross, draw.uniform(rows, "variant") < 0.6,
                               draw.uniform(rows, "traditional") < 0.03)
        names = w.names(m, traditional)
        other_form = cross & ~traditional
        names = _where(other_form, pl.select(
            pl.when(names.str.ends_with("有限责任公司"))
            .then(names.str.replace("有限责任公司$", "有限公司"))
            .otherwise(names.str.replace("有限公司$", "有限责任公司"))).to_series(), names)

        gift = w.is_gift(m)
        program = _enum_written(contract, "program",
                                _where(gift, "specialty_gift", pl.Series(["imported_goods"] * len(
                                    rows))), spec.english, draw.uniform(rows, "program.alias"))
        categories = _where(gift, _list_written(draw, rows, "cat.gift", _CATEGORIES_GIFT, 2),
                            _list_written(draw, rows, "cat", _CATEGORIES_IMPORTED, 3))
        written_as = draw.choice(rows, "country.style", [0.6, 0.3, 0.1])
        names_by_style = [[c[1] for c in _COUNTRIES], [c[0] for c in _COUNTRIES],
                          [c[2] for c in _COUNTRIES]]
        countries = _where(written_as == 0,
                           _list_written(draw, rows, "country", names_by_style[0], 3),
                           _where(written_as == 1,
                                  _list_written(draw, rows, "country", names_by_style[1], 3),
                                  _list_written(draw, rows, "country", names_by_style[2], 3)))
        countries = _where(gift, None, countries)

        style = draw.integers(rows, "date.style", 4)
        start = w.today_days - draw.integers(rows, "valid_from", 1100)
        years = 2 + draw.integers(rows, "years", 4)
        until = start + years * 365 - 1
        status_value = pl.Series(["active", "suspended", "revoked"]).gather(self._status(rows))
        status = _enum_written(contract, "status", status_value, spec.english,
                               draw.uniform(rows, "status.alias"))
        contact = _where(draw.uniform(rows, "contact") < 0.7, _people(draw, rows, "contact"),
                         None)
        phone = _where(draw.uniform(rows, "phone") < 0.6, _phones(draw, rows, "phone"), None)
        store = _where(draw.uniform(rows, "store") < 0.6,
                       _concat(_pick(_BRANDS, draw.integers(m, "brand", len(_BRANDS))),
                               _pick(_STORE_KINDS, draw.integers(rows, "store.kind", 6))), None)
        address = _concat(_pick(_ROADS, draw.integers(rows, "road", len(_ROADS))),
                          pl.Series(1 + draw.integers(rows, "number", 999)).cast(pl.String), "号")
        flags = {
            "chinese_label": 0.95, "traceable": 0.9, "no_reason_return_7d": 0.85,
            "offline_no_reason_return": 0.6, "advance_compensation": 0.55,
        }
        columns: dict[str, pl.Series] = {
            "filing_id": filing_id,
            "uscc": w.usccs(m, wrong_mod31=_is(kind, "merchants", "uscc_check_character"),
                            wrong_org=_is(kind, "merchants", "org_code_check_character")),
            "merchant_name": names,
            "store_name": store,
            "program": program,
            "city": city,
            "district": district,
            "address": address,
            "categories": categories,
            "origin_countries": countries,
            **{flag: _yes_no(draw, m, flag, p, spec.yes_no) for flag, p in flags.items()},
            "valid_from": _dates_written(start, style),
            "valid_until": _dates_written(until, style),
            "status": status,
            "contact_name": contact,
            "contact_phone": phone,
        }
        self._merchant_defects(columns, kind, rows, spec, start, style)
        return _Chunk(pl.DataFrame(columns), kind, _rejected_count(kind, "merchants"))

    def _merchant_defects(self, c: dict[str, pl.Series], kind: np.ndarray, rows: np.ndarray,
                          spec: _FileSpec, start: np.ndarray, style: np.ndarray) -> None:
        draw, w = self.draws["merchants"], self.world

        def bad(name: str) -> np.ndarray:
            return _is(kind, "merchants", name)

        c["valid_from"] = _where(bad("impossible_date"), _pick(
            _IMPOSSIBLE_DATES, draw.integers(rows, "bad.date", len(_IMPOSSIBLE_DATES))),
            c["valid_from"])
        c["valid_until"] = _where(bad("valid_until_before_valid_from"),
                                  _dates_written(start - 365, style), c["valid_until"])
        others = [city for i, cities in enumerate(w.cities) if i != spec.region_index
                  for city in cities]
        if others:
            c["city"] = _where(bad("city_of_another_region"), _pick(
                others, draw.integers(rows, "bad.city", len(others))), c["city"])
        c["program"] = _where(bad("unknown_program"), "免税商品", c["program"])
        c["status"] = _where(bad("unknown_status"), "待审", c["status"])
        c["traceable"] = _where(bad("unknown_yes_no"), "可能", c["traceable"])
        c["origin_countries"] = _where(bad("unknown_country"), "日本、纳尼亚",
                                       c["origin_countries"])
        missing_origin = bad("imported_without_origin")
        c["program"] = _where(missing_origin, "进口商品", c["program"])
        c["origin_countries"] = _where(missing_origin, None, c["origin_countries"])
        c["contact_phone"] = _where(bad("bad_phone"), _pick(
            ["12345", "139-1234", "电话待补充", "00000"], draw.integers(rows, "bad.phone", 4)),
            c["contact_phone"])
        c["merchant_name"] = _where(bad("missing_name"), None, c["merchant_name"])

    # complaints ---------------------------------------------------------------------------

    def _target_rows(self, draw: _Draws, rows: np.ndarray, region_index: int, skew: float
                     ) -> np.ndarray:
        """Filing rows the records are about: mostly merchants of the uploading region, a few
        of other regions; ``skew`` > 1 piles records onto a few merchants."""
        w = self.world
        lo, hi = w.bounds[region_index], w.bounds[region_index + 1]
        size = max(int(hi - lo), 1)
        rank = np.minimum((size * draw.uniform(rows, "target") ** skew).astype(np.int64),
                          size - 1)
        # Spread the busiest ranks over the region with a bijection of [0, size).
        step = next(a for a in (1_000_003, 999_983, 7_919, 1) if math.gcd(a, size) == 1)
        local = lo + (rank * step + 12_345) % size
        anywhere = draw.integers(rows, "target.any", max(w.merchant_rows, 1))
        return np.where(draw.uniform(rows, "target.elsewhere") < 0.05, anywhere, local)

    def complaints(self, spec: _FileSpec, rows: np.ndarray) -> _Chunk:
        w, draw, contract = self.world, self.draws["complaints"], self.contracts["complaints"]
        region = w.regions[spec.region_index]
        kind = _defect_kinds(draw, rows, "complaints", spec, self.bad_fraction)

        def bad(name: str) -> np.ndarray:
            return _is(kind, "complaints", name)

        m = w.merchant_of(self._target_rows(draw, rows, spec.region_index, skew=3.0))
        complaint_id = _concat(f"{region.code}-TS-", pl.Series(
            np.where(bad("duplicate_key"), rows - 1, rows)).cast(pl.String).str.zfill(9))
        received = w.today_days - draw.integers(rows, "received", 730)
        age = w.today_days - received
        resolved_after = np.minimum(1 + draw.integers(rows, "resolved", 60), age)
        names, weights = _COMPLAINT_STATUSES
        status_value = pl.Series(names).gather(draw.choice(rows, "status", weights))
        status_value = _where(bad("resolved_without_date") | bad("resolved_before_received"),
                              "resolved", status_value)
        # A complaint "received" in the future is still open (else its resolution date would
        # also come before it, a second error).
        status_value = _where(bad("received_in_future"), "unresolved", status_value)
        resolved = (status_value == "resolved").to_numpy()
        style = draw.integers(rows, "date.style", 4)
        categories, weights = _COMPLAINT_CATEGORIES
        category = _enum_written(contract, "category", pl.Series(categories).gather(
            draw.choice(rows, "category", weights)), spec.english,
            draw.uniform(rows, "category.alias"))
        amount = np.round(np.exp(4 + 1.5 * draw.normal(rows, "amount")), 2)
        amount_text = pl.Series(amount).cast(pl.String)
        amount_text = _where(draw.uniform(rows, "amount.zero") < 0.2, "0", amount_text)
        c: dict[str, pl.Series] = {
            "complaint_id": complaint_id,
            "uscc": w.usccs(m, wrong_mod31=bad("uscc_check_character"),
                            wrong_org=bad("org_code_check_character")),
            "received_on": _dates_written(received, style),
            "category": category,
            "status": _enum_written(contract, "status", status_value, spec.english,
                                    draw.uniform(rows, "status.alias")),
            "resolved_on": _where(resolved, _dates_written(received + resolved_after, style),
                                  None),
            "recovered_amount_cny": _where(resolved & (draw.uniform(rows, "amount.given") < 0.8),
                                           amount_text, None),
            "consumer_name": _where(draw.uniform(rows, "consumer") < 0.5,
                                    _people(draw, rows, "consumer"), None),
            "consumer_phone": _where(draw.uniform(rows, "consumer.phone") < 0.5,
                                     _phones(draw, rows, "consumer.phone"), None),
        }
        c["received_on"] = _where(bad("impossible_date"), _pick(
            _IMPOSSIBLE_DATES, draw.integers(rows, "bad.date", len(_IMPOSSIBLE_DATES))),
            c["received_on"])
        future = _typed_years_ahead(w.today_days, draw.integers(rows, "bad.future", 365))
        c["received_on"] = _where(bad("received_in_future"), _dates_written(future, style),
                                  c["received_on"])
        c["resolved_on"] = _where(bad("resolved_without_date"), None, c["resolved_on"])
        c["resolved_on"] = _where(bad("resolved_before_received"),
                                  _dates_written(received - 3, style), c["resolved_on"])
        c["recovered_amount_cny"] = _where(bad("negative_amount"), "-50",
                                           c["recovered_amount_cny"])
        c["recovered_amount_cny"] = _where(bad("amount_not_a_number"), "约500元",
                                           c["recovered_amount_cny"])
        c["category"] = _where(bad("unknown_category"), "服务态度", c["category"])
        c["consumer_phone"] = _where(bad("bad_phone"), "12345", c["consumer_phone"])
        return _Chunk(pl.DataFrame(c), kind, _rejected_count(kind, "complaints"))

    # inspections --------------------------------------------------------------------------

    def inspections(self, spec: _FileSpec, rows: np.ndarray) -> _Chunk:
        w, draw, contract = self.world, self.draws["inspections"], self.contracts["inspections"]
        region = w.regions[spec.region_index]
        kind = _defect_kinds(draw, rows, "inspections", spec, self.bad_fraction)

        def bad(name: str) -> np.ndarray:
            return _is(kind, "inspections", name)

        m = w.merchant_of(self._target_rows(draw, rows, spec.region_index, skew=1.0))
        failed = draw.uniform(rows, "fail") < 0.10
        serious = failed & (draw.uniform(rows, "serious") < 0.25)
        failed |= bad("fail_without_severity")
        tested = w.today_days - draw.integers(rows, "tested", 700)
        style = draw.integers(rows, "date.style", 4)
        result = _enum_written(contract, "result", _where(failed, "fail", pl.Series(
            ["pass"] * len(rows))), spec.english, draw.uniform(rows, "result.alias"))
        severity = _enum_written(contract, "severity", _where(serious, "serious", pl.Series(
            ["minor"] * len(rows))), spec.english, draw.uniform(rows, "severity.alias"))
        product = _where(w.is_gift(m), _pick([g for g, _ in _GIFTS], draw.integers(
            rows, "gift", len(_GIFTS))), _pick(_INSPECTED_PRODUCTS, draw.integers(
                rows, "product", len(_INSPECTED_PRODUCTS))))
        c: dict[str, pl.Series] = {
            "inspection_id": _concat(f"{region.code}-JC-", pl.Series(
                np.where(bad("duplicate_key"), rows - 1, rows)).cast(pl.String).str.zfill(8)),
            "uscc": w.usccs(m, wrong_mod31=bad("uscc_check_character"),
                            wrong_org=bad("org_code_check_character")),
            "product_name": _where(bad("missing_product_name"), None, product),
            "tested_on": _dates_written(tested, style),
            "result": result,
            "severity": _where(failed & ~bad("fail_without_severity"), severity, None),
            "defect_items": _where(failed, _pick(_DEFECT_ITEMS, draw.integers(
                rows, "defect", len(_DEFECT_ITEMS))), None),
        }
        c["tested_on"] = _where(bad("impossible_date"), _pick(
            _IMPOSSIBLE_DATES, draw.integers(rows, "bad.date", len(_IMPOSSIBLE_DATES))),
            c["tested_on"])
        c["tested_on"] = _where(bad("tested_in_future"), _dates_written(
            _typed_years_ahead(w.today_days, draw.integers(rows, "bad.future", 365)), style),
            c["tested_on"])
        c["result"] = _where(bad("unknown_result"), "待定", c["result"])
        return _Chunk(pl.DataFrame(c), kind, _rejected_count(kind, "inspections"))

    # gift evaluations ---------------------------------------------------------------------

    def gift_layout(self, region_index: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
        """(product of each row, evaluator number of each row) for a region's ``rows`` gift
        rows: products have 3-9 evaluators each."""
        draw = self.draws["gift_evaluations"]
        base = region_index * 10**9
        products = np.arange(rows // 3 + 1)
        counts = 3 + draw.integers(base + products, "evaluators", 7)
        ends = np.cumsum(counts)
        n_products = int(np.searchsorted(ends, rows)) + 1
        counts = counts[:n_products].copy()
        counts[-1] -= int(ends[n_products - 1] - rows)
        product = np.repeat(np.arange(n_products), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        return product, np.arange(rows) - first

    def gift_evaluations(self, spec: _FileSpec, rows: np.ndarray, product: np.ndarray,
                         evaluator: np.ndarray) -> _Chunk:
        w, draw = self.world, self.draws["gift_evaluations"]
        region = w.regions[spec.region_index]
        key = spec.region_index * 10**9 + product  # draws per product
        # Only a product's second evaluator may repeat the first one's key: one duplicate per
        # product at most, so the rows to reject are known exactly.
        first_row = rows - evaluator
        kind = _defect_kinds(draw, rows, "gift_evaluations", spec, self.bad_fraction,
                             usable=lambda r: evaluator == 1)
        first_clean = draw.uniform(first_row, "bad") >= self.bad_fraction
        dup = _is(kind, "gift_evaluations", "duplicate_key")
        kind = np.where(dup & ~first_clean, 0, kind)

        def bad(name: str) -> np.ndarray:
            return _is(kind, "gift_evaluations", name)

        # The product's maker: a specialty-gift merchant of the region (the first gift
        # merchant among a few candidates).
        lo, hi = w.bounds[spec.region_index], w.bounds[spec.region_index + 1]
        size = max(int(hi - lo), 1)
        candidates = np.stack([w.merchant_of(lo + draw.integers(key, f"maker.{k}", size))
                               for k in range(16)])
        is_gift = np.stack([w.is_gift(c) for c in candidates])
        maker = candidates[is_gift.argmax(axis=0), np.arange(len(rows))]
        gift = draw.integers(key, "gift", len(_GIFTS))
        cities = w.cities[spec.region_index]
        city = draw.integers(key, "origin", len(cities))
        quality = 5.5 + 3.5 * draw.uniform(key, "quality")
        scores = {}
        for dim in ("quality", "culture", "packaging", "value"):
            raw = quality + 0.6 * draw.normal(key, dim) + 0.8 * draw.normal(rows, dim)
            scores[dim] = pl.Series(np.clip(np.round(raw * 2) / 2, 0, 10)).cast(pl.String)
        evaluator_no = np.where(bad("duplicate_key"), 0, evaluator)
        c: dict[str, pl.Series] = {
            "product_id": _concat(f"{region.code}-G-", pl.Series(product).cast(pl.String)
                                  .str.zfill(6)),
            "uscc": w.usccs(maker, wrong_mod31=bad("uscc_check_character"),
                            wrong_org=bad("org_code_check_character")),
            "product_name": _concat(_pick(cities, city), _pick([g for g, _ in _GIFTS], gift)),
            "origin_city": _pick(cities, city),
            "category": _pick([c for _, c in _GIFTS], gift),
            "evaluation_round": _concat(f"{w.today.year}-R", pl.Series(
                1 + draw.integers(key, "round", 2)).cast(pl.String)),
            "evaluator_id": _concat("E", pl.Series(1 + evaluator_no).cast(pl.String)
                                    .str.zfill(2)),
            **scores,
        }
        c["quality"] = _where(bad("score_out_of_range"), _pick(
            ["11", "-1", "12.5", "100"], draw.integers(rows, "bad.score", 4)), c["quality"])
        c["culture"] = _where(bad("score_not_a_number"), _pick(
            ["优", "良好", "八分"], draw.integers(rows, "bad.nan", 3)), c["culture"])
        c["evaluator_id"] = _where(bad("missing_evaluator"), None, c["evaluator_id"])
        return _Chunk(pl.DataFrame(c), kind, _rejected_count(kind, "gift_evaluations"))


# -- writing files ---------------------------------------------------------------------------


def _headers(contract: Contract, english: bool) -> dict[str, str]:
    out = {}
    for col in contract.columns:
        if english:
            ascii_aliases = [a for a in col.aliases if a.isascii()]
            out[col.name] = (ascii_aliases[0] if ascii_aliases else col.name).title()
        else:
            out[col.name] = col.label_zh
    return out


class _Writer:
    """Writes chunks of one upload in one format, header first, footer last."""

    def __init__(self, path: Path, fmt: str, title: str, header: list[str], created: date):
        self.path, self.fmt, self.title, self.header = path, fmt, title, header
        self.rows = 0
        self._fh: BinaryIO | None = None
        self._book = None
        if fmt == "xlsx":
            self._book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
            # A fixed creation time: the same arguments give the same bytes.
            self._book.set_properties({"created": datetime.combine(created, time())})
            self._sheet = self._book.add_worksheet("汇总")
            self._sheet.write_string(0, 0, title)
            for i, name in enumerate(header):
                self._sheet.write_string(2, i, name)
            self._next_row = 3
        else:
            self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()
            if fmt == "csv-bom":
                self._fh.write("\ufeff".encode())
            if fmt == "csv-gb18030":
                self._fh.write((title + "," * (len(header) - 1) + "\r\n").encode("gb18030"))

    def write(self, frame: pl.DataFrame) -> None:
        frame = frame.rename(dict(zip(frame.columns, self.header, strict=True)))
        first = self.rows == 0
        self.rows += frame.height
        if self._fh is not None:
            if self.fmt == "csv-gb18030":
                text = frame.write_csv(include_header=first, line_terminator="\r\n")
                self._fh.write(text.encode("gb18030"))
            else:
                frame.write_csv(self._fh, include_header=first,
                                separator=";" if self.fmt == "csv-bom" else ",")
            return
        for values in frame.iter_rows():
            for i, value in enumerate(values):
                if value is not None:
                    self._sheet.write_string(self._next_row, i, value)
            self._next_row += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            return
        footer = self._next_row + 1
        self._sheet.write_string(footer, 0, "填表说明：1. 日期可填写为 2024-05-06、2024/5/6 或"
                                            " 2024年5月6日；2. 带*为必填项。")
        self._sheet.write_string(footer + 1, 0, "填表人：赵六")
        self._sheet.write_string(footer + 1, 1, "审核人：钱七")
        self._book.close()


def write_sample_uploads(
    folder: Path,
    regions: RegionConfig,
    contracts: Mapping[str, Contract],
    sizes: SampleSizes,
    *,
    seed: int = DEFAULT_SEED,
    today: date,
    formats: Sequence[str] = FORMATS,
    parts: int = 3,
    chunk_rows: int = 250_000,
    bad_fraction: float = BAD_FRACTION,
) -> list[SampleFile]:
    """Write council uploads for every region and dataset into ``folder`` and describe them.

    Rows of each dataset are split evenly between the regions, and a region's rows into
    ``parts`` files (one for a ``replace``-mode dataset). File formats rotate through
    ``formats`` (see :data:`FORMATS`). Every date lies on or before ``today`` unless a defect
    puts it in the future. The output depends only on the arguments (not on ``chunk_rows``).

    Raises ``ValueError`` for an unknown format or an empty region configuration.
    """
    unknown = set(formats) - set(FORMATS)
    if unknown or not formats:
        raise ValueError(f"formats must be among {FORMATS}, got {sorted(unknown) or 'none'}")
    region_list = list(regions.regions.values())
    if not region_list:
        raise ValueError("no regions configured")
    folder.mkdir(parents=True, exist_ok=True)
    world = _World(seed, today, region_list, sizes.merchants)
    gen = _Generator(world, contracts, bad_fraction)
    files: list[SampleFile] = []
    for d_index, dataset in enumerate(DATASETS):
        contract = contracts[dataset]
        bounds = _split(sizes.of(dataset), len(region_list))
        for r_index, region in enumerate(region_list):
            lo, hi = int(bounds[r_index]), int(bounds[r_index + 1])
            if hi <= lo:
                continue
            n_parts = 1 if region.upload_mode(dataset) == "replace" else max(1, parts)
            gift = gen.gift_layout(r_index, hi - lo) if dataset == "gift_evaluations" else None
            edges = _split(hi - lo, n_parts) + lo
            if gift is not None:
                # A product's evaluations stay in one file.
                product = gift[0]
                edges = np.array([lo] + [lo + int(np.searchsorted(product, product[e - lo]))
                                         for e in edges[1:-1]] + [hi])
            for part in range(n_parts):
                start, end = int(edges[part]), int(edges[part + 1])
                if end <= start:
                    continue
                files.append(_write_file(
                    folder, gen, contract, region, r_index, d_index, dataset, part, n_parts,
                    start, end, formats, chunk_rows, gift, lo,
                ))
    return files


def _write_file(
    folder: Path, gen: _Generator, contract: Contract, region: Region, r_index: int,
    d_index: int, dataset: str, part: int, n_parts: int, start: int, end: int,
    formats: Sequence[str], chunk_rows: int, gift: tuple[np.ndarray, np.ndarray] | None,
    region_start: int,
) -> SampleFile:
    draw = _Draws(gen.world.seed, f"file.{dataset}.{region.code}")
    fmt = formats[(r_index + d_index + part) % len(formats)]
    english = bool(draw.uniform(np.array([part]), "english")[0] < 0.25)
    spec = _FileSpec(r_index, dataset, start, end, english,
                     int(draw.integers(np.array([part]), "yes_no", len(_YES_NO))[0]))
    order = [c.name for c in contract.columns]
    if draw.uniform(np.array([part]), "shuffle")[0] < 0.3:
        order = [order[i] for i in np.argsort(draw.uniform(np.arange(len(order)), f"o{part}"))]
    headers = _headers(contract, english)
    name = f"{region.code}_{dataset}_{gen.world.today:%Y%m%d}_{part + 1}of{n_parts}"
    path = folder / f"{name}.{_EXTENSIONS[fmt]}"
    title = f"{region.name_zh}{contract.title_zh}汇总表（{gen.world.today:%Y年%-m月}）"
    writer = _Writer(path, fmt, title, [headers[c] for c in order], gen.world.today)
    defects: Counter[str] = Counter()
    rejected = 0
    kinds = list(DEFECTS[dataset])
    try:
        for chunk_start in range(start, end, chunk_rows):
            rows = np.arange(chunk_start, min(end, chunk_start + chunk_rows), dtype=np.int64)
            if gift is not None:
                local = rows - region_start
                chunk = gen.gift_evaluations(spec, rows, gift[0][local], gift[1][local])
            else:
                chunk = getattr(gen, dataset)(spec, rows)
            writer.write(chunk.frame.select(order))
            rejected += chunk.rejected
            values, counts = np.unique(chunk.defects[chunk.defects >= 0], return_counts=True)
            defects.update({kinds[v]: int(n) for v, n in zip(values, counts, strict=True)})
    finally:
        writer.close()
    return SampleFile(region.code, dataset, path, fmt, end - start, rejected,
                      dict(sorted(defects.items())))
