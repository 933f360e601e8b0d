"""A large GB18030 upload is read whatever byte its encoding-detection sample ends on: a cut
inside a two-byte character once made the whole file "undecodable"."""

from __future__ import annotations

import pytest
from fixtures.council_files import check_bytes

from registry.ingest.readers import _SAMPLE_BYTES

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
