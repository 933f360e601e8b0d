"""Row rules, header mapping, the staged schema and row conservation."""

from __future__ import annotations

import datetime as dt

import pandera.errors
import polars as pl
import pytest
from fixtures.council_files import check_bytes
from fixtures.make_fixtures import uscc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.config.contracts import known_header_key, load_contracts
from registry.config.settings import Settings
from registry.ingest import rejections as rj
from registry.ingest.validation import HIDDEN_VALUE, staged_schema

CONTRACTS = load_contracts(Settings(_env_file=None).schemas_dir)
GOOD = uscc("310115", "MA1K3Y4P")
HEADER = "检测编号,统一社会信用代码,样品名称,检测日期,检测结论,严重程度,不合格项目"


def _inspections(*rows: str, region: str = "AH"):
    return check_bytes(("\n".join([HEADER, *rows]) + "\n").encode(), "inspections", region)


def _codes(check) -> list[tuple[int, str, str]]:
    return [(r["row"], r["column"], r["code"]) for r in check.errors.iter_rows(named=True)]


def test_a_clean_row_is_accepted_typed() -> None:
    check = _inspections(f"T1,{GOOD},奶粉,2024年4月1日,不合格,严重,菌落总数")
    assert (check.rows_in, check.accepted.height, check.rejected) == (1, 1, 0)
    row = check.accepted.row(0, named=True)
    assert row["tested_on"] == dt.date(2024, 4, 1)
    assert (row["result"], row["severity"], row["region"]) == ("fail", "serious", "AH")


def test_a_row_keeps_every_error_it_has() -> None:
    check = _inspections(f"T1,{GOOD[:-1]}0,,2099-01-01,不合格,,")
    assert _codes(check) == [
        (2, "product_name", rj.REQUIRED_MISSING),
        (2, "severity", rj.CONDITIONAL_REQUIRED_MISSING),
        (2, "tested_on", rj.DATE_IN_FUTURE),
        (2, "uscc", rj.USCC_INVALID),
    ]
    assert check.quarantined.height == 1
    assert len(check.quarantined[0, "_errors"]) == 4


def test_every_copy_of_a_duplicated_key_is_rejected() -> None:
    check = _inspections(
        f"T1,{GOOD},奶粉,2024-04-01,合格,,", f"T2,{GOOD},奶粉,2024-04-01,合格,,",
        f"T1,{GOOD},红酒,2024-04-02,合格,,",
    )
    assert _codes(check) == [(2, "inspection_id", rj.DUPLICATE_KEY),
                             (4, "inspection_id", rj.DUPLICATE_KEY)]
    assert check.accepted["inspection_id"].to_list() == ["T2"]


def test_copies_that_agree_are_read_once_naming_the_first() -> None:
    """A row pasted twice (three times here, spaces aside) is one row; a copy that differs in
    any column, here a PII-free one, is not a copy that agrees."""
    row = f"T1,{GOOD},奶粉,2024-04-01,合格,,"
    check = _inspections(row, f"T2,{GOOD},奶粉,2024-04-01,合格,,", row, f" {row}")
    assert _codes(check) == [(4, "inspection_id", rj.DUPLICATE_ROW),
                             (5, "inspection_id", rj.DUPLICATE_ROW)]
    assert all("与第 2 行完全相同" in m for m in check.errors["message_zh"])
    assert all("same as row 2;" in m for m in check.errors["message_en"])
    assert check.accepted["inspection_id"].to_list() == ["T1", "T2"]


def test_inspections_copies_that_disagree_are_not_settled() -> None:
    """Only a contract's ``settles_copies`` column settles copies: a lab's 合格 and 不合格 for
    one report number are both refused (inspections name none)."""
    check = _inspections(f"T1,{GOOD},奶粉,2024-04-01,合格,,",
                         f"T1,{GOOD},奶粉,2024-04-01,不合格,严重,菌落总数")
    assert [c for _, _, c in _codes(check)] == [rj.DUPLICATE_KEY, rj.DUPLICATE_KEY]


def _merchants(*rows: dict[str, str]):
    from council_world import csv_bytes

    return check_bytes(csv_bytes(rows), "merchants", "JS")


def test_merchant_copies_are_settled_by_the_least_trusting_status() -> None:
    """Revoked before suspended before anything else, the last in the file among equals."""
    from council_world import filing, merchant_code

    x = merchant_code("JS", 1)
    check = _merchants(filing("JS", "JS-1", x, Status="暂停"), filing("JS", "JS-1", x),
                       filing("JS", "JS-1", x, Status="撤销", Address="一号"),
                       filing("JS", "JS-1", x, Status="已注销"),
                       filing("JS", "JS-1", x, Status="暂停", Address="二号"))
    assert [(r, c) for r, _, c in _codes(check)] == [
        (2, rj.DUPLICATE_KEY_SETTLED), (3, rj.DUPLICATE_KEY_SETTLED),
        (4, rj.DUPLICATE_KEY_SETTLED), (6, rj.DUPLICATE_KEY_SETTLED)]
    assert all("最不利的第 5 行" in m for m in check.errors["message_zh"])
    assert check.accepted.select("status", "address").rows() == [("revoked", "JS-1 号")]


def test_settles_copies_names_values_of_its_column_and_one_column_at_most() -> None:
    from pydantic import ValidationError

    from registry.config.contracts import Contract

    document = CONTRACTS["merchants"].model_dump()
    status = next(c for c in document["columns"] if c["name"] == "status")
    status["settles_copies"] = ["revoked", "closed"]
    with pytest.raises(ValidationError, match="'settles_copies' names values it lacks"):
        Contract.model_validate(document)
    status["settles_copies"] = ["revoked"]
    program = next(c for c in document["columns"] if c["name"] == "program")
    program["settles_copies"] = [next(iter(program["values"]))]
    with pytest.raises(ValidationError, match="several columns settle copies"):
        Contract.model_validate(document)


def test_a_range_start_is_a_date_column_of_the_contract() -> None:
    from pydantic import ValidationError

    from registry.config.contracts import Contract

    document = CONTRACTS["merchants"].model_dump()
    until = next(c for c in document["columns"] if c["name"] == "valid_until")
    until["range_start"] = "status"
    with pytest.raises(ValidationError, match="range_start 'status' is not a date column"):
        Contract.model_validate(document)
    until["range_start"] = "valid_since"
    with pytest.raises(ValidationError, match="refers to unknown column 'valid_since'"):
        Contract.model_validate(document)
    until["range_start"] = None
    status = next(c for c in document["columns"] if c["name"] == "status")
    status["range_start"] = "valid_from"
    with pytest.raises(ValidationError, match="'range_start' is for date columns only"):
        Contract.model_validate(document)


def test_messages_name_file_row_column_and_reason_in_both_languages() -> None:
    check = _inspections(f"T1,{GOOD},奶粉,2024-04-01,合格?,,")
    error = check.errors.row(0, named=True)
    assert error["message_zh"].startswith("文件「upload.csv」第 2 行：「检测结论 (result)」")
    assert "合格?" in error["message_zh"]
    assert error["message_en"].startswith("File 'upload.csv', row 2: '检测结论 (result)'")


def test_city_of_another_region_is_rejected_and_pii_is_never_echoed() -> None:
    header = ("备案编号,统一社会信用代码,经营者名称,备案类别,所在城市,经营品类,中文标签,可追溯,"
              "七日无理由退货,线下无理由退货,先行赔付,备案日期,有效期至,状态,联系电话")
    row = f"F1,{GOOD},某公司,特色伴手礼,杭州,糕点,是,是,是,是,是,2024-01-01,2025-01-01,有效,"
    check = check_bytes(f"{header}\n{row}13900001111\n{row.replace('F1', 'F2')}555\n".encode(),
                        "merchants", "SH")
    assert _codes(check) == [(2, "city", rj.CITY_NOT_IN_REGION), (3, "city", rj.CITY_NOT_IN_REGION),
                             (3, "contact_phone", rj.PHONE_INVALID)]
    assert "上海市 SH" in check.errors["message_zh"][0]
    phone_error = check.errors.filter(pl.col("code") == rj.PHONE_INVALID).row(0, named=True)
    assert phone_error["value"] == HIDDEN_VALUE and "555" not in phone_error["message_zh"]


MERCHANT_HEADER = ("备案编号,统一社会信用代码,经营者名称,门店名称,备案类别,所在城市,经营品类,"
                   "中文标签,可追溯,七日无理由退货,线下无理由退货,先行赔付,备案日期,有效期至,状态,"
                   "联系人,联系电话")


def _merchant(filing_id: str, name: str, store: str = "", categories: str = "糕点") -> str:
    return (f"{filing_id},{GOOD},{name},{store},特色伴手礼,上海,{categories},是,是,是,是,是,"
            "2024-01-01,2025-01-01,有效,张三,13900001111")


@pytest.mark.parametrize(
    ("row", "column", "shown"),
    [
        (_merchant("F1", "某公司 13912345678"), "merchant_name", "某公司 139****5678"),
        (_merchant("F1", "某公司", store="店长 139-1234-5678"), "store_name", "店长 139****5678"),
        (_merchant("F1", "某公司", categories="糕点、310101199001011234"), "categories",
         "糕点、310****1234"),
        (_merchant("13912345678", "某公司"), "filing_id", "139****5678"),
    ],
)
def test_a_personal_number_in_free_text_rejects_the_row_shown_masked(row, column, shown) -> None:
    check = check_bytes(f"{MERCHANT_HEADER}\n{row}\n".encode(), "merchants", "SH")
    assert _codes(check) == [(2, column, rj.PII_IN_TEXT)]
    error = check.errors.row(0, named=True)
    assert error["value"] == shown and shown in error["message_zh"]
    assert "个人信息不得填写在此列" in error["message_zh"]
    assert "Personal data must not be written in this column" in error["message_en"]
    assert check.quarantined[0, column] == shown  # quarantine keeps it masked too


def test_ordinary_numbers_in_text_are_not_personal_data() -> None:
    row = _merchant("F1", "上海1391234567公司", store="南京东路100号 2024-01-01")
    check = check_bytes(f"{MERCHANT_HEADER}\n{row}\n".encode(), "merchants", "SH")
    assert check.errors.is_empty() and check.accepted.height == 1


def test_pii_columns_are_checked_but_neither_staged_nor_quarantined() -> None:
    good = _merchant("F1", "某公司")
    check = check_bytes(
        f"{MERCHANT_HEADER}\n{good}\n{_merchant('F2', '某公司')[:-1]}\n".encode(), "merchants",
        "SH")
    assert _codes(check) == [(3, "contact_phone", rj.PHONE_INVALID)]
    for frame in (check.accepted, check.quarantined):
        assert not {"contact_name", "contact_phone"} & set(frame.columns)
    assert "contact_phone" not in CONTRACTS["merchants"].staged_schema()


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (HEADER + ",检测机构照片", rj.UNKNOWN_COLUMN),
        (HEADER.replace("样品名称", "检测日期"), rj.DUPLICATE_COLUMN),
        (HEADER.replace(",样品名称", ""), rj.MISSING_COLUMN),
    ],
)
def test_header_problems_refuse_the_whole_file(header: str, code: str) -> None:
    row = ",".join(["T1", GOOD, "奶粉", "2024-04-01", "合格", "", "", "x"][: header.count(",") + 1])
    check = check_bytes(f"{header}\n{row}\n".encode(), "inspections", "AH")
    assert check.file_error is not None and check.file_error.code == code
    assert (check.rows_in, check.accepted.height, check.rejected) == (0, 0, 0)


def test_every_header_problem_is_found_at_once_in_column_order() -> None:
    header = "检测编号,样品名称,检测机构照片,检测日起,检测结论,检测日期"
    check = check_bytes(f"{header}\nT1,奶粉,x,2024-04-01,合格,2024-04-01\n".encode(),
                        "inspections", "AH")
    assert [(e.code, e.detail, e.did_you_mean) for e in check.file_errors] == [
        (rj.UNKNOWN_COLUMN, "检测机构照片", None),
        (rj.UNKNOWN_COLUMN, "检测日起", "检测日期"),  # a typo: the closest accepted header
        (rj.MISSING_COLUMN, "统一社会信用代码 (uscc)", None),
    ]
    told = check.file_errors[1].as_dict("抽检.csv")
    assert told["did_you_mean"] == "检测日期"
    assert "是否应为「检测日期」" in told["message_zh"]
    assert "Did you mean '检测日期'?" in told["message_en"]


def test_a_header_in_a_missing_columns_place_is_offered_as_that_column() -> None:
    header = "检测编号,营业执照号,样品名称,检测日期,检测结论"
    check = check_bytes(f"{header}\nT1,{GOOD},奶粉,2024-04-01,合格\n".encode(),
                        "inspections", "AH")
    assert [(e.code, e.did_you_mean) for e in check.file_errors] == [
        (rj.UNKNOWN_COLUMN, "统一社会信用代码"), (rj.MISSING_COLUMN, "营业执照号")]
    assert "营业执照号" in check.file_errors[1].as_dict("抽检.csv")["message_zh"]


def test_headers_match_ignoring_case_width_spaces_and_stars() -> None:
    header = "*检测编号,ＵＳＣＣ,样品 名称,Test Date,RESULT,备注"
    check = check_bytes(f"{header}\nT1,{GOOD},奶粉,2024-04-01,pass,随便\n".encode(),
                        "inspections", "AH")
    assert check.file_error is None and check.accepted.height == 1
    assert check.ignored_columns == ["备注"]


def test_a_note_in_brackets_after_a_header_is_read_past_only_when_the_header_is_unknown(
) -> None:
    """检测结论（合格/不合格） names 检测结论, 备注【选填】 the ignored 备注; 挽回经济损失(元) is an
    alias as it stands, and a note alone, or after words that name nothing, names nothing."""
    header = ("*检测编号【必填】,统一社会信用代码,样品名称,检测日期(年-月-日),"
              "检测结论（合格/不合格）,备注【选填】")
    check = check_bytes(f"{header}\nT1,{GOOD},奶粉,2024-04-01,合格,随便\n".encode(),
                        "inspections", "AH")
    assert check.file_error is None and check.accepted.height == 1
    assert check.ignored_columns == ["备注【选填】"]
    index = load_contracts(Settings(_env_file=None).schemas_dir)["complaints"].header_index()
    assert [known_header_key(h, index) for h in (
        "挽回经济损失(元)", "(元)", "金额(元)", "投诉编号（受理）", "状态(已解决/未解决)")] == [
        "挽回经济损失(元)", None, None, "投诉编号", "状态"]


def test_a_numbers_header_is_not_read_past_its_note_which_may_be_its_unit() -> None:
    """挽回经济损失(万元) counts ten-thousands of yuan: read as 挽回经济损失, every amount
    would be published 10,000 times too small. The header is refused, and the alias in yuan
    offered."""
    header = "投诉编号,统一社会信用代码,受理日期,投诉类别,处理状态,挽回经济损失(万元)"
    check = check_bytes(f"{header}\nC1,{GOOD},2026-06-01,质量,处理中,1.5\n".encode(),
                        "complaints", "ZJ")
    assert [(e.code, e.did_you_mean) for e in check.file_errors] == [
        ("UNKNOWN_COLUMN", "挽回经济损失(元)")]


def test_blank_header_over_data_is_refused_but_empty_columns_are_dropped() -> None:
    ok = check_bytes(f"{HEADER},\nT1,{GOOD},奶粉,2024-04-01,合格,,,\n".encode(),
                     "inspections", "AH")
    assert ok.file_error is None and ok.accepted.height == 1
    bad = check_bytes(f"{HEADER},\nT1,{GOOD},奶粉,2024-04-01,合格,,,x\n".encode(),
                      "inspections", "AH")
    assert bad.file_error is not None and bad.file_error.code == rj.BLANK_HEADER


def test_staged_schema_refuses_what_the_registry_build_must_never_see() -> None:
    contract = CONTRACTS["inspections"]
    schema = staged_schema(contract)
    good = _inspections(f"T1,{GOOD},奶粉,2024-04-01,合格,,").accepted.with_columns(
        _source_key=pl.lit("landing/AH/inspections/a.csv"), _sha256=pl.lit("0" * 64),
        _batch_id=pl.lit("b"),
        _ingested_at=pl.lit(dt.datetime(2026, 1, 1, tzinfo=dt.UTC)).cast(pl.Datetime("us", "UTC")),
    ).select(list(contract.staged_schema()))
    schema.validate(good)
    with pytest.raises(pandera.errors.SchemaError):
        schema.validate(good.with_columns(result=pl.lit("合格")))
    with pytest.raises(pandera.errors.SchemaError):
        schema.validate(pl.concat([good, good]))


# -- rows in = accepted + quarantined, whatever the cells hold -------------------------------

cells = st.one_of(
    st.sampled_from(["", " ", "T1", "T2", GOOD, GOOD.lower(), "合格", "不合格", "严重", "pass",
                     "2024-04-01", "2024/4/1", "2099-01-01", "45390", "2024-02-30", "奶粉"]),
    st.text(alphabet="T12合格,\"、 ", max_size=6),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.lists(cells, min_size=7, max_size=7), min_size=1, max_size=12))
def test_rows_in_equals_accepted_plus_quarantined(rows: list[list[str]]) -> None:
    lines = [",".join('"' + c.replace('"', '""') + '"' for c in row) for row in rows]
    check = _inspections(*lines)
    if check.file_error is not None:  # e.g. every row blank: no data rows
        assert check.file_error.code == rj.NO_DATA_ROWS
        return
    assert check.rows_in == check.accepted.height + check.quarantined.height
    rejected_rows = set(check.errors["row"].to_list())
    assert rejected_rows == set(check.quarantined["_source_row"].to_list())
    assert rejected_rows.isdisjoint(check.accepted["_source_row"].to_list())
