"""A large GB18030 upload is read whatever byte its encoding-detection sample ends on and
whatever its first 64 KiB hold: a cut inside a two-byte character, or a head full of commas,
√ and × that charset-normalizer takes for noise, once made the whole file "undecodable"."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import polars as pl
import pytest
from fixtures.council_files import check_bytes

from registry.config.contracts import load_contracts
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.demo.samples import SampleFile, SampleSizes, write_sample_uploads
from registry.ingest import rejections as rj
from registry.ingest.pipeline import read_limits
from registry.ingest.readers import _SAMPLE_BYTES, upload_table
from registry.ingest.tables import SOURCE_ROW

SETTINGS = Settings(_env_file=None)
CONTRACTS = load_contracts(SETTINGS.schemas_dir)
# A Zhejiang merchant list of 750 rows (a quarter of 3,000), about 136 KB in GB18030: its
# 64 KiB sample ends inside a character, and charset-normalizer finds no encoding for it.
SEED, MERCHANTS, EXPORTED = 11, 3000, dt.date(2026, 6, 30)

HEADER = "备案编号,统一社会信用代码,经营者名称,备案类别,所在城市,经营品类,原产国,中文标签,可追溯," \
         "七日无理由退货,线下无理由退货,先行赔付,备案日期,有效期至,状态\r\n"
ROW = "SH-{n:06d},91310115MA1K3Y4P9X,上海久光百货有限公司,进口商品,上海,食品、酒类,日本,是,是,是," \
      "否,否,2024-03-01,2027-02-28,有效\r\n"


@pytest.mark.parametrize("shift", [0, 1])
def test_a_sample_cut_inside_a_character_still_finds_gb18030(shift: int) -> None:
    # One byte more or less in front: one of the two puts the 64 KiB cut between the two
    # bytes of a character.
    title = "上海市经营者备案汇总表" + "," * 14 + "\r\n"
    body = "".join(ROW.format(n=n) for n in range(1200))
    data = (" " * shift + title + HEADER + body).encode("gb18030")
    assert len(data) > _SAMPLE_BYTES
    check = check_bytes(data, "merchants", "SH")
    assert check.file_error is None, check.file_error
    assert check.encoding == "gb18030"
    assert check.rows_in == 1200


def test_one_of_the_cases_does_split_a_character() -> None:
    title = "上海市经营者备案汇总表" + "," * 14 + "\r\n"
    body = "".join(ROW.format(n=n) for n in range(1200))
    splits = []
    for shift in (0, 1):
        data = (" " * shift + title + HEADER + body).encode("gb18030")
        try:
            data[:_SAMPLE_BYTES].decode("gb18030")
            splits.append(False)
        except UnicodeDecodeError:
            splits.append(True)
    assert splits.count(True) == 1


def _zhejiang_export(folder: Path) -> SampleFile:
    """Zhejiang's merchant list as its old system exports it: GB18030, a title row above the
    header, Chinese names and addresses (a few in Traditional characters), √ and × flags."""
    files = write_sample_uploads(
        folder, load_regions(SETTINGS.config_dir), CONTRACTS, SampleSizes(MERCHANTS, 0, 0, 0),
        seed=SEED, today=EXPORTED, formats=("csv-gb18030",), parts=1,
    )
    return next(f for f in files if f.region == "ZJ" and f.dataset == "merchants")


def test_the_export_is_one_whose_sample_cuts_a_character(tmp_path) -> None:
    data = _zhejiang_export(tmp_path).path.read_bytes()
    assert len(data) > 2 * _SAMPLE_BYTES
    with pytest.raises(UnicodeDecodeError, match="incomplete multibyte sequence"):
        data[:_SAMPLE_BYTES].decode("gb18030")


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-8", "utf-8-sig"])
def test_a_large_export_is_read_cell_for_cell_in_any_accepted_encoding(
    tmp_path, encoding: str
) -> None:
    sample = _zhejiang_export(tmp_path)
    text = sample.path.read_bytes().decode("gb18030")
    data = text.encode(encoding)
    table = upload_table(data, set(CONTRACTS["merchants"].header_index()),
                         read_limits(SETTINGS))
    assert table.encoding == {"gbk": "gb18030"}.get(encoding, encoding)
    expected = pl.read_csv(text.encode(), skip_rows=1, infer_schema=False)
    assert table.header == expected.columns
    assert table.rows.drop(SOURCE_ROW).rows() == expected.rows()
    assert table.rows.height == sample.rows


def test_the_export_is_checked_row_by_row_none_refused_for_encoding(tmp_path) -> None:
    sample = _zhejiang_export(tmp_path)
    check = check_bytes(sample.path.read_bytes(), "merchants", "ZJ", file=sample.path.name)
    assert check.file_errors == ()
    assert (check.encoding, check.rows_in, check.rejected) == (
        "gb18030", sample.rows, sample.rejected)


def test_a_damaged_byte_past_the_sample_is_refused_naming_the_line_and_byte(tmp_path) -> None:
    sample = _zhejiang_export(tmp_path)
    data = bytearray(sample.path.read_bytes())
    at = data.index("有限公司".encode("gb18030"), 2 * _SAMPLE_BYTES - 4096)
    data[at] = 0xFF  # no GB18030 character starts with 0xFF
    line = data.count(b"\n", 0, at) + 1
    check = check_bytes(bytes(data), "merchants", "ZJ", file=sample.path.name)
    assert [e.code for e in check.file_errors] == [rj.ENCODING_UNDECODABLE]
    message = check.file_errors[0].as_dict(sample.path.name)
    for text in (message["message_zh"], message["message_en"]):
        assert sample.path.name in text
        assert re.search(rf"line {line:,}\b", text) and f"byte {at:,}" in text, text


def test_chinese_that_starts_after_an_ascii_head_is_read_as_gb18030() -> None:
    # An English header and 64 KiB of romanised rows tell nothing of the encoding: the
    # Chinese rows after them do.
    head = "Filing Id,Unified Social Credit Code,Merchant Name\r\n" + "".join(
        f"ZJ-BA-{n:06d},91330100MA27U0QX1K,Hangzhou Xingguang Trading Co. Ltd\r\n"
        for n in range(1500))
    tail = "ZJ-BA-999999,91330100MA27U0QX1K,杭州星光国际贸易有限公司\r\n"
    data = (head + tail).encode("gb18030")
    assert data[:_SAMPLE_BYTES].isascii() and len(data) > _SAMPLE_BYTES
    table = upload_table(data, set(CONTRACTS["merchants"].header_index()),
                         read_limits(SETTINGS))
    assert table.encoding == "gb18030"
    assert table.rows.height == 1501 and table.rows.row(-1)[2] == "杭州星光国际贸易有限公司"
