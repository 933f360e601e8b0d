"""Text to typed values, whole columns at a time.

Each function takes and returns polars expressions or frames; none reads settings or storage.
A value that cannot be interpreted becomes null here, and :mod:`registry.ingest.validation`
reports it (it still has the text): nothing is coerced into something plausible.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import polars as pl
from opencc import OpenCC

from registry._compat import opencc as opencc_internals
from registry.config.contracts import (
    INVISIBLE_CATEGORY,
    WORDS_BEFORE_NOTE,
    WORDS_BEFORE_REMARK,
    ColumnSpec,
    Contract,
    Currency,
    Vocabulary,
)

log = logging.getLogger(__name__)

REGION_SUFFIX = "__region"
# Parsed once per distinct value (see _via_distinct) rather than once per cell.
_PER_DISTINCT = ("date", "list", "country_list", "enum", "boolean", "city")
# Columns whose words name one of the vocabulary's values (a status, yes/no, a city, a country):
# read in Simplified characters, so that 撤銷 is 撤销 and 韓國 is 韩国. Their cleaned text, which
# receipts show, stays as the council wrote it.
_READ_AS_SIMPLIFIED = ("enum", "boolean", "city", "country_list")

# Accepted date spellings, after NFKC: 2022-03-01, 2022/3/1, 2022.3.1, 2022年3月1日, optionally
# followed by a time of day without a zone: how spreadsheets and Parquet write a date-typed cell
# (00:00:00), and how a council's case system exports a moment (受理时间 2022-03-01 14:32:10, a
# validity ending 23:59:59). Such a time is the council's own, Beijing time, so the day is the
# date written. A time with a zone (Z, +08:00) is not read: its day in Beijing depends on it.
_DATE_TEXT = (r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
              r"(?:[ T](?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d+)?)?)?$")
# Eight digits, year, month and day (20271231), as many government systems export a date, and as
# Excel keeps it when such an export is opened: a number. Read only when it is a real day.
_COMPACT_DATE = r"^(\d{4})(\d{2})(\d{2})$"
# A validity given as one range, a date then its end, the way a certificate prints it
# (2024.01.01-2027.12.31, 2024年1月1日至2027年12月31日, 2026-01-01～长期), in NFKC text (～ and －
# are plain). Group 1 is the start, group 2 the end as written.
_DATE_RANGE = (r"^(\d{4}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}(?:\s*日)?|\d{8})"
               r"\s*(?:至|到|[~\-—–―]{1,2})\s*(\S.*)$")
# Excel stores dates as days since 1899-12-30, a time of day as the fraction of a day; five
# digits cover 1927-2173.
_EXCEL_SERIAL = r"^\d{5}(?:\.\d+)?$"
_EXCEL_EPOCH = pl.date(1899, 12, 30)
# Plain decimals, optionally with thousands separators: 1234.5, 1,234.5, -3.
_NUMBER_TEXT = r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$|^[+-]?\.\d+$"
# List items are separated by 、 ; , or / (full-width ； and ， are plain after NFKC).
_LIST_SEPARATORS = r"[、;,/]"
_ITEM_JOIN = "\x1f"
# Mobile numbers, landlines with area code (and extension), 400/800 service numbers, with an
# optional +86 prefix, once spaces and brackets are removed.
_PHONE_TEXT = (
    r"^(?:\+?86-?)?(?:1[3-9]\d{9}|0\d{2,3}-?\d{7,8}(?:-\d{1,6})?|[48]00-?\d{3}-?\d{4})$"
)

_T2S = OpenCC("t2s")
# A cell that NFKC or trimming may change: leading or trailing space, or a character outside
# ASCII, CJK ideographs and the common CJK brackets (full-width forms, ideographic space,
# compatibility ideographs and the like are outside).
_MAY_CHANGE = (
    r"^\s|\s$|[^\x00-\x7F\x{3001}\x{3002}\x{3008}-\x{3011}\x{3400}-\x{4DBF}"
    r"\x{4E00}-\x{9FFF}]"
)


# Invisible characters (registry.config.contracts.INVISIBLE_CATEGORY), as a polars regex.
_INVISIBLE = rf"\p{{{INVISIBLE_CATEGORY}}}"


def _cleaned(text: pl.Expr) -> pl.Expr:
    return (text.str.normalize("NFKC").str.replace_all(_INVISIBLE, "").str.strip_chars()
            .replace("", None))


def cleaned_text(text: pl.Series) -> pl.Series:
    """``text`` in NFKC form (full-width digits and letters become plain), without invisible
    characters (a zero-width space pasted with a code), trimmed, with empty cells as null, in
    one chunk. The input is not modified.

    NFKC costs about as much as parsing the CSV, and leaves most cells unchanged (ASCII and
    CJK ideographs are stable under it), so only the cells that may change are normalised."""
    positions = text.str.contains(_MAY_CHANGE).fill_null(False).arg_true()
    if not positions.is_empty():
        fixed = (text.gather(positions).str.normalize("NFKC").str.replace_all(_INVISIBLE, "")
                 .str.strip_chars())
        text = text.clone().scatter(positions, fixed)
    # One chunk: a frame whose columns are chunked differently is re-chunked whole by every
    # select on it, and the reader's columns come in many chunks.
    return text.replace("", None).rechunk()


def _matching_text(text: pl.Expr) -> pl.Expr:
    """What :func:`registry.config.contracts.value_key` does, for a whole column of NFKC text."""
    return text.str.to_lowercase().str.replace_all(r"\s+", "")


def date_from_text(text: pl.Expr) -> pl.Expr:
    """pl.Date from the accepted spellings, eight digits (20271231) or an Excel serial number;
    null otherwise (including impossible dates such as 2022-02-30 and 20271331)."""

    def iso(pattern: str) -> pl.Expr:
        parts = text.str.extract_groups(pattern)
        return pl.format("{}-{}-{}", parts.struct.field("1"),
                         parts.struct.field("2").str.zfill(2),
                         parts.struct.field("3").str.zfill(2))

    # pl.date() raises on impossible dates; an ISO string parsed leniently gives null instead.
    serial = (
        pl.when(text.str.contains(_EXCEL_SERIAL))
        .then(text.str.extract(r"^(\d{5})").cast(pl.Int32))
    )
    return pl.coalesce(
        iso(_DATE_TEXT).str.to_date("%Y-%m-%d", strict=False),
        iso(_COMPACT_DATE).str.to_date("%Y-%m-%d", strict=False),
        _EXCEL_EPOCH + pl.duration(days=serial),
    )


def boolean_from_text(text: pl.Expr, words: Mapping[str, bool]) -> pl.Expr:
    """True/False from the yes/no words in ``schemas/reference/booleans.yaml``; else null."""
    return _matching_text(text).replace_strict(dict(words), default=None, return_dtype=pl.Boolean)


def enum_from_text(text: pl.Expr, values: Mapping[str, str],
                   noted: Mapping[str, str] | None = None) -> pl.Expr:
    """The canonical English value for any of its aliases; null for anything else. With
    ``noted`` (:meth:`~registry.config.contracts.ColumnSpec.noted_index`), an alias of those
    values followed by a note, in brackets (撤销（违规经营）, 暂停【整改中】) or after a colon, a
    comma, a semicolon or 、 (不合格：菌落总数超标), is read as the value."""
    key = _matching_text(text)
    exact = key.replace_strict(dict(values), default=None, return_dtype=pl.String)
    if not noted:
        return exact
    word = pl.coalesce(key.str.extract(WORDS_BEFORE_NOTE), key.str.extract(WORDS_BEFORE_REMARK))
    return pl.coalesce(exact, word.replace_strict(dict(noted), default=None,
                                                   return_dtype=pl.String))


def float_from_text(text: pl.Expr) -> pl.Expr:
    """Float64 from a plain decimal (thousands separators allowed); null otherwise."""
    return (
        pl.when(text.str.contains(_NUMBER_TEXT))
        .then(text.str.replace_all(",", "", literal=True))
        .cast(pl.Float64, strict=False)
    )


def money_from_text(text: pl.Expr, currency: Currency) -> pl.Expr:
    """Float64 from an amount of money in ``currency``: a plain decimal (thousands separators
    allowed) with one of its marks before or after it (¥300, 1,200.50元, RMB 45), times a
    multiple named after it (0.5万元), or 0 for a word for none (无); null otherwise (another
    currency's amount, a range, words). Matched case-folded, without spaces."""
    key = text.str.to_lowercase().str.replace_all(r"\s", "")
    marks = _alternation(currency.marks)
    multiple = _alternation(list(currency.multiples))
    number = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+"
    parts = key.str.extract_groups(
        rf"^(?:{marks})?(?P<number>{number})(?P<multiple>{multiple})?(?:{marks})?$")
    amount = parts.struct.field("number").str.replace_all(",", "", literal=True).cast(
        pl.Float64, strict=False)
    times = parts.struct.field("multiple").replace_strict(
        currency.multiples, default=1.0, return_dtype=pl.Float64)
    return (pl.when(key.is_in(currency.none)).then(pl.lit(0.0))
            .otherwise(amount * times))


def _alternation(words: Sequence[str]) -> str:
    """A regex matching any of ``words`` (longest first; none when empty)."""
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) or "(?!)"


def items_from_text(text: pl.Expr) -> pl.Expr:
    """List of the trimmed, non-empty items, in order, without repeats."""
    return (
        text.str.replace_all(_LIST_SEPARATORS, _ITEM_JOIN)
        .str.split(_ITEM_JOIN)
        .list.eval(pl.element().str.strip_chars().filter(pl.element().str.strip_chars() != ""))
        .list.unique(maintain_order=True)
    )


def countries_from_items(items: pl.Expr, countries: Mapping[str, str]) -> pl.Expr:
    """Each item as an ISO 3166-1 alpha-2 code; an unknown name becomes a null item."""
    return items.list.eval(
        _matching_text(pl.element()).replace_strict(dict(countries), default=None)
    )


def phone_from_text(text: pl.Expr) -> pl.Expr:
    """The number without spaces and brackets when it looks like a Chinese phone number."""
    compact = text.str.replace_all(r"[\s()（）]", "")
    return pl.when(compact.str.contains(_PHONE_TEXT)).then(compact)


def uscc_from_text(text: pl.Expr) -> pl.Expr:
    """Upper-case, spaces removed (cells are already trimmed NFKC). Validity is checked by
    :func:`registry.ingest.uscc.uscc_is_valid`."""
    return text.str.replace_all(" ", "", literal=True).str.to_uppercase()


def name_matching_key(names: pl.Series) -> pl.Series:
    """Traditional→Simplified (OpenCC t2s), case-folded, without spaces: the key that matches
    上海國際貿易 with 上海国际贸易. For matching only; the original name is kept. ``names``
    must already be NFKC (see :func:`cleaned_text`); t2s output stays NFKC.

    Only names holding a character t2s may change are given to OpenCC (see
    :func:`_t2s_triggers`), joined into one text and converted in one call: one C++ call, on
    the few names that need it, instead of one per row."""
    return _folded(simplified_text(names))


def simplified_text(names: pl.Series) -> pl.Series:
    """``names`` (NFKC) converted Traditional→Simplified by OpenCC t2s, in one call over the
    names holding a character t2s may change; the others as they are."""
    triggers = _t2s_triggers()
    chinese = names.str.contains(triggers).fill_null(False).arg_true()
    simplified = names.clone()
    if not chinese.is_empty():
        chosen = names.gather(chinese)
        # One name per line for OpenCC, and no NUL, which ends its output (a space is
        # folded away below, as these would be).
        if chosen.str.contains(r"[\r\n\x00]").any():
            chosen = chosen.str.replace_all(r"[\r\n\x00]", " ")
        # UTF-8 bytes in and out: never a Python str of every name.
        text = chosen.str.join("\n").cast(pl.Binary).item()
        converted = (pl.Series([_t2s_converter()(text)], dtype=pl.Binary).cast(pl.String)
                     .str.split("\n").explode())
        if converted.len() != chinese.len():  # t2s never adds or removes line breaks
            raise AssertionError("OpenCC changed the number of lines")
        simplified = simplified.scatter(chinese, converted)
    return simplified


@cache
def _t2s_converter() -> Callable[[bytes], bytes]:
    """OpenCC t2s over UTF-8 bytes, through OpenCC's C API
    (:func:`registry._compat.opencc.c_converter`): a ctypes call releases the GIL, so the other
    normalisation thread keeps working while a million names convert (the Python binding
    holds the GIL for the whole call). Falls back to the Python binding when the C API is
    not there. tests/ingest/test_normalize.py checks that both agree and that the C API is
    the one used here."""
    api = opencc_internals.c_converter("t2s.json")
    if api is None:
        log.warning("OpenCC's C API not found: converting through its Python binding")
        return lambda text: _T2S.convert(text.decode("utf-8")).encode("utf-8")
    return api


@cache
def _t2s_triggers() -> str:
    """A regex class of the characters OpenCC t2s may change: a name without one converts to
    itself, so it need not be converted at all (most names: converting all of them is most of
    the cost of normalising a million rows).

    t2s matches phrases first (TSPhrases), then single characters (TSCharacters). So a
    character can change (a) on its own: every CJK code point is converted once, here, to
    find those; or (b) inside a phrase, which only happens to characters TSCharacters lists
    with several simplified forms (瞭 → 瞭/了 in 瞭解 → 了解): those are read from OpenCC's own
    dictionary. tests/ingest/test_normalize.py checks the result against converting
    everything. If the dictionary cannot be read, every non-ASCII name is converted."""
    ranges = [(0x3400, 0x4DC0), (0x4E00, 0xA000), (0xF900, 0xFB00), (0x20000, 0x2FA20)]
    chars = [chr(c) for start, end in ranges for c in range(start, end)]
    converted = _T2S.convert("\n".join(chars)).split("\n")
    changing = {ch for ch, out in zip(chars, converted, strict=True) if ch != out}
    ambiguous = _t2s_ambiguous_characters()
    if ambiguous is None:
        log.warning("OpenCC dictionaries unreadable: converting every non-ASCII name")
        return r"[^\x00-\x7F]"
    return _char_class(changing | ambiguous)


def _t2s_ambiguous_characters() -> set[str] | None:
    """Every character of the multi-valued entries of TSCharacters(.Ext).ocd2, or None when
    they cannot be read (:func:`registry._compat.opencc.dictionary_values`)."""
    found: set[str] = set()
    for name in ("TSCharacters.ocd2", "TSCharactersExt.ocd2"):
        items = opencc_internals.dictionary_values(name)
        if items is None:
            return None
        for values in items:
            if len(values) > 1:
                found.update("".join(values))
    return found


def _char_class(chars: set[str]) -> str:
    """A regex character class matching exactly ``chars``, as code-point ranges."""
    points = sorted(map(ord, chars))
    parts, start = [], points[0]
    for prev, cur in itertools.pairwise([*points, -1]):
        if cur != prev + 1:
            parts.append(f"\\x{{{start:X}}}" + (f"-\\x{{{prev:X}}}" if prev > start else ""))
            start = cur
    return "[" + "".join(parts) + "]"


def _folded(names: pl.Series) -> pl.Series:
    """Lower-cased, without spaces. Case mapping is slow on CJK text and almost every Chinese
    name has no capital letter, so only the names that have one (or a space) are touched.
    Cells are NFKC and trimmed already: the only spaces left are inner ASCII ones."""
    # One pass over every name finds the few to touch; only those are looked at twice.
    touched = names.str.contains(r"[\p{Lu} ]").fill_null(False).arg_true()
    if touched.is_empty():
        return names
    folded = names.gather(touched).to_frame("n").select(
        pl.when(pl.col("n").str.contains(r"\p{Lu}")).then(pl.col("n").str.to_lowercase())
        .otherwise(pl.col("n"))
        .str.replace_all(" ", "", literal=True)
    ).to_series()
    return names.clone().scatter(touched, folded)


def _typed(col: ColumnSpec, vocabulary: Vocabulary, cities: Mapping[str, str]) -> list[pl.Expr]:
    text = pl.col(col.name)
    match col.dtype:
        case "string":
            typed = text
        case "uscc":
            typed = uscc_from_text(text)
        case "enum":
            typed = enum_from_text(text, col.value_index(), col.noted_index())
        case "boolean":
            typed = boolean_from_text(text, vocabulary.booleans)
        case "date":
            typed = date_from_text(text)
            if col.no_end is not None:
                typed = (pl.when(_matching_text(text).is_in(col.no_end.keys()))
                         .then(pl.lit(col.no_end.reads_as)).otherwise(typed))
        case "float":
            typed = (float_from_text(text) if col.currency is None
                     else money_from_text(text, vocabulary.currencies[col.currency]))
        case "list":
            typed = items_from_text(text)
        case "country_list":
            typed = countries_from_items(items_from_text(text), vocabulary.countries)
        case "phone":
            typed = phone_from_text(text)
        case "city":
            found = (
                _matching_text(text)
                .replace_strict(dict(cities), default=None, return_dtype=pl.String)
                .str.split_exact("/", 1)
            )
            return [
                found.struct.field("field_1").alias(col.name),
                found.struct.field("field_0").alias(col.name + REGION_SUFFIX),
            ]
    return [typed.cast(col.staged_dtype).alias(col.name)]


def city_lookup(city_index: Mapping[str, tuple[str, str]]) -> dict[str, str]:
    """``RegionConfig.city_index()`` as matching key -> "REGION/城市", the form
    :func:`normalized` takes (one string, so one vectorised replace gives both parts)."""
    return {key: f"{region}/{city}" for key, (region, city) in city_index.items()}


def gives_date_ranges(text: pl.Series) -> bool:
    """Whether a cell of ``text`` gives a validity as a range (:func:`split_date_ranges`)."""
    return bool(text.to_frame("t").select(
        _cleaned(pl.col("t")).str.contains(_DATE_RANGE).any()).item())


def split_date_ranges(texts: pl.DataFrame, contract: Contract) -> pl.DataFrame:
    """``texts`` (an upload's text columns, named as in the contract) with the start of each
    range in a column that may give one (``range_start``: 有效期 2024.01.01-2027.12.31) read
    into the start's column, when the file has no column of its own for it, and the end left
    in the range's column. A cell that is not such a range stays as it is, and its start is
    missing (a required start's row is refused for it)."""
    for col in contract.columns:
        start = col.range_start
        if start is None or col.name not in texts.columns or start in texts.columns:
            continue
        parts = _cleaned(pl.col(col.name)).str.extract_groups(_DATE_RANGE)
        texts = texts.with_columns(
            parts.struct.field("1").alias(start),
            pl.coalesce(parts.struct.field("2"), pl.col(col.name)).alias(col.name),
        )
    return texts


def normalized(
    texts: pl.DataFrame, contract: Contract, vocabulary: Vocabulary, cities: Mapping[str, str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(cleaned, typed) for an upload's text columns (named as in the contract).

    ``cleaned``: ``texts`` with every contract column's text as :func:`cleaned_text` makes it
    (an all-null column when the file does not have it). ``typed``: one typed column per
    contract column (null where the text could not be interpreted), plus ``{city}__region``
    for city columns and the Traditional→Simplified matching key of columns that declare one.
    ``cities`` comes from :func:`city_lookup`.

    Columns are independent, and polars releases the GIL, so they are normalised in a thread
    per core: on one thread the cores took turns. The column with a matching key is the
    longest (OpenCC), so it starts first."""
    present = [c for c in contract.columns if c.name in texts.columns]
    longest_first = sorted(present, key=lambda c: c.match_key is None)

    def column(col: ColumnSpec) -> tuple[str, _ColumnOutputs]:
        return col.name, _column_normalized(texts[col.name], col, vocabulary, cities)

    with ThreadPoolExecutor(max_workers=pl.thread_pool_size()) as pool:
        done = dict(pool.map(column, longest_first))
    # A new frame, not texts.with_columns(): the reader's columns come in many chunks, and a
    # select re-chunks every column of a frame whose columns are chunked differently.
    cleaned = pl.DataFrame(
        [done[name][0] if name in done else texts[name] for name in texts.columns]
    ).with_columns(
        pl.lit(None, pl.String).alias(c.name) for c in contract.columns if c.name not in done
    )
    typed: list[pl.Series] = []
    for col in contract.columns:
        if col.name in done:
            typed.extend(done[col.name][1])
            continue
        typed.append(_nulls(col.name, col.staged_dtype, texts.height))
        if col.dtype == "city":
            typed.append(_nulls(col.name + REGION_SUFFIX, pl.String, texts.height))
    typed.extend(done[c.name][2] for c in present if c.match_key)
    return cleaned, pl.DataFrame(typed)


def _nulls(name: str, dtype: pl.DataType, height: int) -> pl.Series:
    return pl.repeat(None, height, dtype=dtype, eager=True).alias(name)


# (cleaned text, typed outputs, matching key or None) of one column.
_ColumnOutputs = tuple[pl.Series, list[pl.Series], pl.Series | None]


def _column_normalized(
    raw: pl.Series, col: ColumnSpec, vocabulary: Vocabulary, cities: Mapping[str, str]
) -> _ColumnOutputs:
    """One column's cleaned text, typed outputs and matching key (None when it has none).

    Councils repeat the same few spellings of yes/no, statuses, cities, categories and dates,
    so those columns are cleaned and parsed once per distinct text and gathered back; the
    others are cleaned cell by cell and parsed as whole columns."""
    if col.dtype in _PER_DISTINCT:
        text, typed = _via_distinct(raw, col, vocabulary, cities)
    else:
        text = cleaned_text(raw)
        # Lazily: an eager select computes a subexpression used twice (phone_from_text) twice.
        typed = (text.to_frame().lazy().select(_typed(col, vocabulary, cities)).collect()
                 .get_columns())
    key = name_matching_key(typed[0]).alias(col.match_key) if col.match_key else None
    return text, typed, key


def _via_distinct(
    raw: pl.Series, col: ColumnSpec, vocabulary: Vocabulary, cities: Mapping[str, str]
) -> tuple[pl.Series, list[pl.Series]]:
    """One column's cleaned text and typed outputs, computed on its distinct texts and
    gathered back by position (replace_strict itself takes no list values)."""
    distinct = raw.drop_nulls().unique()
    # An Enum of the distinct texts numbers each cell by its text: its codes are the
    # positions, found faster than by replace_strict.
    position = raw.cast(pl.Enum(distinct)).to_physical()
    cleaned = distinct.to_frame(col.name).select(_cleaned(pl.col(col.name)))
    read = cleaned
    if col.dtype in _READ_AS_SIMPLIFIED:
        read = cleaned.with_columns(simplified_text(cleaned[col.name]))
    typed = read.select(_typed(col, vocabulary, cities))
    return cleaned[col.name].gather(position), [s.gather(position) for s in typed.iter_columns()]
