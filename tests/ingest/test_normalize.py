"""Text to typed values, on tiny inline frames."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opencc import OpenCC

from registry._compat import opencc as opencc_internals
from registry.config.contracts import header_key, load_contracts, load_vocabulary
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.ingest.normalize import (
    REGION_SUFFIX,
    boolean_from_text,
    city_lookup,
    cleaned_text,
    countries_from_items,
    date_from_text,
    float_from_text,
    gives_date_ranges,
    items_from_text,
    name_matching_key,
    normalized,
    phone_from_text,
    simplified_text,
    split_date_ranges,
)

VOCAB = load_vocabulary(Settings().schemas_dir)
CONTRACTS = load_contracts(Settings().schemas_dir)


def _one(expr: pl.Expr, values: list) -> list:
    return pl.DataFrame({"t": values}, schema={"t": pl.String}).select(expr).to_series().to_list()


def test_cleaned_text_is_nfkc_trimmed_and_empty_is_null() -> None:
    text = pl.Series("a", ["  ＳＨ－００１ ", "", "   ", None, "上海 ", "plain"])
    out = cleaned_text(text)
    assert out.to_list() == ["SH-001", None, None, None, "上海", "plain"]
    assert text[0] == "  ＳＨ－００１ "  # the input is not mutated


def test_dates_in_every_council_spelling() -> None:
    d = dt.date(2022, 3, 1)
    got = _one(date_from_text(pl.col("t")), [
        "2022-03-01", "2022/3/1", "2022年3月1日", "44621", "2022-03-01 00:00:00", "2022.3.1",
        "2022-03-01 10:30", "2022-03-01 23:59:59", "2022/3/1 8:05:09.250", "2022-03-01T14:32:10",
        "44621.99998842", "20220301",
    ])
    assert got == [d] * 12


def test_impossible_or_unknown_dates_are_null_not_guessed() -> None:
    """A time with a zone is not read either: its day in Beijing depends on the zone."""
    assert _one(date_from_text(pl.col("t")), [
        "2022-02-30", "2022-13-01", "03/01/2022", "20221301", "2022031", "03012022", "下周一",
        "2022-03-01 24:00", "2022-03-01 10:61", "2022-03-01T23:59:59Z", "2022-03-01 10:30+08:00",
    ]) == [None] * 11


def test_booleans() -> None:
    got = _one(boolean_from_text(pl.col("t"), VOCAB.booleans),
               ["是", "否", "Y", "n", "TRUE", "false", "1", "0", "可能", None])
    assert got == [True, False, True, False, True, False, True, False, None, None]


def test_lists_split_on_every_separator_without_repeats() -> None:
    got = _one(items_from_text(pl.col("t")), ["食品、酒类;化妆品/母婴,食品", "、 、"])
    assert got == [["食品", "酒类", "化妆品", "母婴"], []]


def test_countries_from_chinese_names_and_codes() -> None:
    items = items_from_text(pl.col("t"))
    got = _one(countries_from_items(items, VOCAB.countries), ["日本、法国", "au;nz", "Narnia、JP"])
    assert got == [["JP", "FR"], ["AU", "NZ"], [None, "JP"]]


def test_numbers_allow_thousands_separators_only() -> None:
    got = _one(float_from_text(pl.col("t")), ["1,234.5", "12", "-3", "1,23", "12元", "1e3"])
    assert got == [1234.5, 12.0, -3.0, None, None, None]


def test_phones() -> None:
    got = _one(phone_from_text(pl.col("t")),
               ["139 1600 0001", "021-63210000", "+8613916000001", "12345", "400-820-8820"])
    assert got == ["13916000001", "021-63210000", "+8613916000001", None, "400-820-8820"]


def test_matching_key_is_simplified_and_folded_and_keeps_nulls() -> None:
    names = pl.Series(["上海國際貿易中心", "上海国际贸易中心", "ABC 公司", None])
    assert name_matching_key(names).to_list() == [
        "上海国际贸易中心", "上海国际贸易中心", "abc公司", None,
    ]


def _full_t2s_key(name: str) -> str:
    """The reference: OpenCC on the whole name, then the same folding."""
    return OpenCC("t2s").convert(name).lower().replace(" ", "")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(
    alphabet=st.sampled_from(
        "上海國際貿易有限公司瞭解藉口乾燥著名鍾錶獨鍾夥伴徵收蘋果於是臺灣沈陽瀋陽皇后后面覆蓋"
        "龍鍾情有獨鐘束脩想像魏徵梁昇卿看著穿著乾隆乾坤ABC abc123"
    ),
    min_size=1, max_size=12,
), min_size=1, max_size=30))
def test_matching_key_equals_converting_every_name(names: list[str]) -> None:
    # Only names holding a character t2s may change are converted: the shortcut must give
    # exactly what converting every name gives, phrases (瞭解 → 了解) included.
    got = name_matching_key(pl.Series(names)).to_list()
    assert got == [_full_t2s_key(n) for n in names]


def test_matching_key_agrees_with_opencc_on_its_own_phrase_list() -> None:
    phrases = opencc_internals.dictionary_values("TSPhrases.ocd2")
    assert phrases and len(phrases) > 100
    s2t = OpenCC("s2t")
    # Traditional spellings of every phrase OpenCC knows, inside a longer name.
    names = [f"上海{s2t.convert(values[0])}有限公司" for values in phrases]
    assert name_matching_key(pl.Series(names)).to_list() == [_full_t2s_key(n) for n in names]


def test_t2s_runs_through_opencc_c_api_and_agrees_with_its_python_binding() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from registry.ingest import normalize

    # The C API is what this installation uses (the Python binding holds the GIL): a
    # silent fallback would be a slowdown nobody sees.
    convert = opencc_internals.c_converter("t2s.json")
    assert convert is not None
    normalize._t2s_converter.cache_clear()
    assert normalize._t2s_converter().__qualname__ == convert.__qualname__
    chars = [chr(c) for c in range(0x4E00, 0xA000)]
    text = "\n".join([*chars, "上海國際貿易中心", "瞭解藉口", "乾隆年間的臺灣"])
    reference = OpenCC("t2s").convert(text)
    # Concurrent calls each get their own converter.
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(convert, [text.encode()] * 8))
    assert all(r.decode() == reference for r in results)


def test_matching_key_without_the_c_api_is_the_same(monkeypatch) -> None:
    from registry.ingest import normalize

    names = pl.Series(["上海國際貿易中心", "瞭解藉口\n公司", "ABC 公司", None, "夥伴\x00商行"])
    with_c_api = name_matching_key(names).to_list()
    normalize._t2s_converter.cache_clear()
    monkeypatch.setattr(opencc_internals, "c_converter", lambda config: None)
    try:
        assert name_matching_key(names).to_list() == with_c_api
    finally:
        normalize._t2s_converter.cache_clear()
    assert with_c_api == ["上海国际贸易中心", "了解借口公司", "abc公司", None, "伙伴商行"]


def test_normalized_keeps_column_order_and_fills_absent_columns_with_typed_nulls() -> None:
    settings = Settings(_env_file=None)
    contract = load_contracts(settings.schemas_dir)["merchants"]
    cities = city_lookup(load_regions(settings.config_dir).city_index())
    texts = pl.DataFrame({
        "merchant_name": ["上海國際貿易 ", "ＡＢＣ Trading"],
        "valid_from": ["2022年3月1日", "2022-02-30"],
        "_source_row": [2, 3],
    })
    cleaned, typed = normalized(texts, contract, VOCAB, cities)
    absent = [c.name for c in contract.columns if c.name not in texts.columns]
    assert cleaned.columns == [*texts.columns, *absent]
    assert cleaned["merchant_name"].to_list() == ["上海國際貿易", "ABC Trading"]
    assert cleaned.select(absent).null_count().row(0) == (2,) * len(absent)
    assert typed.columns == [
        *[n for c in contract.columns
          for n in ([c.name, c.name + REGION_SUFFIX] if c.dtype == "city" else [c.name])],
        "merchant_name_key",
    ]
    assert typed["merchant_name_key"].to_list() == ["上海国际贸易", "abctrading"]
    assert typed["valid_from"].to_list() == [dt.date(2022, 3, 1), None]
    assert typed["categories"].dtype == pl.List(pl.String)
    assert typed["city"].null_count() == typed["city" + REGION_SUFFIX].null_count() == 2


def test_every_vocabulary_word_is_its_own_simplified_form() -> None:
    """Statuses, yes/no words, countries and cities are matched in Simplified characters
    (normalize._READ_AS_SIMPLIFIED): a Traditional alias in the vocabulary could never match."""
    config = Settings()
    words = set(VOCAB.booleans) | set(VOCAB.countries)
    words |= set(load_regions(config.config_dir).city_index())
    for contract in load_contracts(config.schemas_dir).values():
        for col in contract.columns:
            if col.dtype == "enum":
                words |= set(col.value_index())
    given_words = pl.Series(sorted(words))
    assert len(given_words) > 300
    assert simplified_text(given_words).to_list() == given_words.to_list()


def test_invisible_characters_leave_cells_and_headers() -> None:
    """Zero-width spaces, byte-order and direction marks and soft hyphens show nothing: a cell
    or a header pasted with one is the same without it; a cell of nothing else is empty."""
    cells = pl.Series(["\u200b91310115MA1K3Y4P64", "SH-2\ufeff", "上海\u200e久光", "\u200b",
                       "a\u00adb", "plain"])
    assert cleaned_text(cells).to_list() == ["91310115MA1K3Y4P64", "SH-2", "上海久光", None,
                                             "ab", "plain"]
    assert header_key("统一社会信用代码\u200b") == header_key("统一社会信用代码")


@pytest.mark.parametrize(("written", "start", "end"), [
    ("2024.01.01-2027.12.31", "2024.01.01", "2027.12.31"),
    ("2024-01-01-2027-12-31", "2024-01-01", "2027-12-31"),
    ("2024年1月1日至2027年12月31日", "2024年1月1日", "2027年12月31日"),
    ("2024/1/1——2027/12/31", "2024/1/1", "2027/12/31"),
    ("２０２４．０１．０１－２０２７．１２．３１", "2024.01.01", "2027.12.31"),
    ("20240101~20271231", "20240101", "20271231"),
    (" 2026-01-01 ～ 长期 ", "2026-01-01", "长期"),
    ("2027-12-31", None, "2027-12-31"),
    ("长期", None, "长期"),
    (None, None, None),
])
def test_a_validity_range_gives_its_start_to_a_file_without_a_start_column(
        written: str | None, start: str | None, end: str | None) -> None:
    contract = CONTRACTS["merchants"]
    texts = pl.DataFrame({"valid_until": [written]}, schema={"valid_until": pl.String})
    split = split_date_ranges(texts, contract)
    assert split.row(0, named=True) == {"valid_until": end, "valid_from": start}


def test_a_file_with_its_own_start_column_keeps_the_range_as_written() -> None:
    texts = pl.DataFrame({"valid_from": ["2024-01-01"], "valid_until": ["2024-01-01-2027-12-31"]})
    assert split_date_ranges(texts, CONTRACTS["merchants"]).equals(texts)


def test_a_column_gives_date_ranges_when_any_cell_is_one() -> None:
    assert gives_date_ranges(pl.Series(["2027-12-31", None, "2024.01.01-2027.12.31"]))
    assert not gives_date_ranges(pl.Series(["2027-12-31", None, "长期", "20271231"]))
