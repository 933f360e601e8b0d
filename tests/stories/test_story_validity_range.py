"""A filing system prints a filing's validity as one column, 有效期, the way a certificate
does: 2024.01.01-2027.12.31, 2024年1月1日至2027年12月31日, or 2026-01-01～长期. The registry's
template has two columns, 备案日期 and 有效期至, so such a file was refused whole for lacking
备案日期, and every revocation in it waited until a clerk split the column. A file without a
start column may now give each filing's validity as a range in 有效期: its start is read as
备案日期 and its end as 有效期至."""

from __future__ import annotations

from datetime import date

from council_world import CouncilWorld, filing, merchant_code


def with_validity_range(row: dict[str, str], validity: str) -> dict[str, str]:
    """``row`` with 有效期 holding ``validity`` instead of its two date columns."""
    kept = {k: v for k, v in row.items() if k not in ("Valid From", "Valid Until")}
    return {**kept, "有效期": validity}


def test_a_list_with_its_validity_as_one_range_is_read(tmp_path):
    """Jiangsu's export revokes X and files Y and Z anew, each validity a range in 有效期, each
    in another spelling. Before, the file was refused (``MISSING_COLUMN``, 备案日期) and X
    stayed trusted. Now X is not listed; Y and Z are, Z without an end (长期)."""
    w = CouncilWorld(tmp_path)
    x, _, _ = w.three_listed("JS")
    y, z = merchant_code("JS", 4), merchant_code("JS", 5)
    key = w.upload("JS", "merchants", [
        with_validity_range(filing("JS", "JS-1", x, Status="撤销"), "2024.01.01-2027.12.31"),
        with_validity_range(filing("JS", "JS-4", y), "2025年3月1日至2028年2月29日"),
        with_validity_range(filing("JS", "JS-5", z), "2026-01-01～长期")])
    w.ingest_accepted(key, 3)
    w.publish()
    assert w.merchant(x) is None
    assert w.merchant(y)["valid_until"] == date(2028, 2, 29)
    assert w.merchant(z)["valid_until"] == date(9999, 12, 31)
    assert {w.merchant(u)["verdict"] for u in (y, z)} == {"trusted"}


def test_a_lone_date_in_the_range_column_says_the_start_is_missing(tmp_path):
    """Guard: Anhui's 有效期 gives one filing only its end, 2027-12-31. That row is refused:
    备案日期 is missing, and the receipt says so; the range beside it is read."""
    w = CouncilWorld(tmp_path)
    x, y, _ = w.three_listed("AH")
    key = w.upload("AH", "merchants", [
        with_validity_range(filing("AH", "AH-1", x, Status="撤销"), "2024-01-01 至 2027-12-31"),
        with_validity_range(filing("AH", "AH-2", y), "2027-12-31")])
    receipt = w.receipt(w.ingest()[key])
    assert (receipt["accepted"], [(e["row"], e["column"], e["code"])
                                  for e in receipt["row_errors"]]) == (
        1, [(3, "valid_from", "REQUIRED_MISSING")])
    w.publish()
    assert w.merchant(x) is None


def test_a_file_whose_validity_column_holds_only_ends_still_lacks_its_start(tmp_path):
    """Guard: Zhejiang's file has 有效期 but no 备案日期, and every 有效期 is one date, an end.
    The file lacks a column, and is refused whole saying so, as before: one reason, not one per
    row."""
    w = CouncilWorld(tmp_path)
    x, y, _ = w.three_listed("ZJ")
    key = w.upload("ZJ", "merchants", [
        with_validity_range(filing("ZJ", "ZJ-1", x, Status="撤销"), "2027-12-31"),
        with_validity_range(filing("ZJ", "ZJ-2", y), "2027-12-31")])
    receipt = w.receipt(w.ingest()[key])
    assert [(e["code"], e["message_en"]) for e in receipt["file_errors"]] == [
        ("MISSING_COLUMN",
         "File 'upload-2.csv' is missing the required column '备案日期 (valid_from)'.")]
    assert (receipt["accepted"], receipt["row_errors"]) == (0, [])
