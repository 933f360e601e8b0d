"""The vectorised USCC check against python-stdnum, the reference for GB 32100 MOD 31."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum.cn import uscc as stdnum_uscc

from registry.ingest.uscc import USCC_ALPHABET, uscc_is_valid

ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]


def org_check(body: str) -> str:
    value = 11 - sum(int(ch, 36) * w for ch, w in zip(body, ORG_WEIGHTS, strict=True)) % 11
    return {10: "X", 11: "0"}.get(value, str(value))


def ours(codes: list[str | None]) -> list[bool | None]:
    return pl.DataFrame({"c": codes}, schema={"c": pl.String}).select(
        uscc_is_valid(pl.col("c"))
    ).to_series().to_list()


usccs_body = st.text(alphabet=USCC_ALPHABET, min_size=8, max_size=8)
# python-stdnum wants digits in positions 1-8 (GB 32100 allows letters such as Y in 1-2).
prefix = st.text(alphabet="0123456789", min_size=8, max_size=8)


@settings(max_examples=300, deadline=None)
@given(prefix=prefix, body=usccs_body)
def test_codes_with_both_check_characters_pass_ours_and_stdnum(prefix: str, body: str) -> None:
    first16 = prefix + body
    first17 = first16 + org_check(body)
    code = first17 + stdnum_uscc.calc_check_digit(first17)
    assert stdnum_uscc.is_valid(code)
    assert ours([code]) == [True]


@settings(max_examples=300, deadline=None)
@given(prefix=prefix, body=usccs_body, wrong=st.sampled_from("0123456789X"))
def test_a_wrong_organisation_check_fails_ours_though_stdnum_accepts_it(
    prefix: str, body: str, wrong: str
) -> None:
    if wrong == org_check(body):
        wrong = "1" if wrong != "1" else "2"
    first17 = prefix + body + wrong
    code = first17 + stdnum_uscc.calc_check_digit(first17)
    assert stdnum_uscc.is_valid(code)  # stdnum does not look at position 17
    assert ours([code]) == [False]


@settings(max_examples=500, deadline=None)
@given(
    prefix=prefix,
    rest=st.text(alphabet=USCC_ALPHABET + "IOSVZ", min_size=9, max_size=10),
)
def test_ours_never_accepts_what_stdnum_rejects(prefix: str, rest: str) -> None:
    code = prefix + rest
    if not stdnum_uscc.is_valid(code):
        assert ours([code]) == [False]


def test_known_codes_and_nulls() -> None:
    assert ours(["91110000600037341L", "91310115MA1K3YJ42R", None, "", "abc"]) == [
        True, False, None, False, False,
    ]


def test_division_code_must_be_digits() -> None:
    first17 = "9111A000" + "60003734" + "1"
    assert ours([first17 + stdnum_uscc.calc_check_digit(first17)]) == [False]
