"""One file names a filing twice. A clerk keeps the year's list in one sheet and appends each
month's changes under it, so X's 有效 row from January and its 撤销 row from November are both
there; another pastes a new merchant's row twice. Refusing every copy (the file does not say
which one the council meant) keeps the filing's previous row: X, revoked in the file, stays
trusted, and the new merchant is not listed at all.

Copies that agree are one row. Copies that disagree are read as the one that trusts the
merchant least, when one of them pauses or ends the filing: a consumer must not read X as
trusted while the council's own file says it is revoked. The receipt names the row read and
says to keep one row."""

from __future__ import annotations

from council_world import CouncilWorld, complaint, filing, merchant_code


def test_a_revocation_appended_under_the_filings_old_row_revokes(tmp_path):
    """Jiangsu lists X, Y and Z. Its clerk appends November's change under the year's list:
    JS-1 撤销. X is no longer trusted; the receipt refuses the old row, naming the row read.
    Later the clerk reinstates X by appending 有效 under the 撤销 row: the file still says X
    was revoked, so X stays untrusted and the receipt says to keep one row. Sent alone, the 有效
    row lists X as trusted again."""
    w = CouncilWorld(tmp_path)
    x, y, z = w.three_listed("JS")
    year = [filing("JS", "JS-1", x), filing("JS", "JS-2", y), filing("JS", "JS-3", z)]
    key = w.upload("JS", "merchants", [*year, filing("JS", "JS-1", x, Status="撤销")])
    receipt = w.receipt(w.ingest()[key])
    assert receipt["accepted"] == 3
    assert [(e["row"], e["code"]) for e in receipt["row_errors"]] == [(2, "DUPLICATE_KEY_SETTLED")]
    assert "第 5 行" in receipt["row_errors"][0]["message_zh"]
    assert "row 5" in receipt["row_errors"][0]["message_en"]
    w.publish()
    assert w.merchant(x) is None
    assert {w.merchant(u)["verdict"] for u in (y, z)} == {"trusted"}

    key = w.upload("JS", "merchants", [*year[1:], filing("JS", "JS-1", x, Status="撤销"),
                                       filing("JS", "JS-1", x, Status="有效")])
    receipt = w.receipt(w.ingest()[key])
    assert [(e["row"], e["code"]) for e in receipt["row_errors"]] == [(5, "DUPLICATE_KEY_SETTLED")]
    assert "请只保留一行" in receipt["row_errors"][0]["message_zh"]
    w.publish()
    assert w.merchant(x) is None

    w.upload("JS", "merchants", [filing("JS", "JS-1", x, Status="有效")])
    w.ingest()
    w.publish()
    assert w.merchant(x)["verdict"] == "trusted"


def test_a_row_pasted_twice_is_read_once(tmp_path):
    """Shanghai's complete list adds SH-4 for a new merchant, its row pasted twice; Zhejiang's
    complaints file has one complaint pasted twice. The new merchant is listed, the complaint
    counted once, and each receipt refuses the second copy as the same as the first."""
    w = CouncilWorld(tmp_path)
    codes = [merchant_code("SH", n) for n in range(1, 5)]
    october = [filing("SH", f"SH-{n}", codes[n - 1]) for n in range(1, 4)]
    w.upload("SH", "merchants", october)
    zj = merchant_code("ZJ", 1)
    w.upload("ZJ", "merchants", [filing("ZJ", "ZJ-1", zj)])
    w.ingest()
    w.publish()

    new = filing("SH", "SH-4", codes[3])
    key = w.upload("SH", "merchants", [*october, new, dict(new)])
    receipt = w.receipt(w.ingest()[key])
    assert (receipt["accepted"], receipt["batch_status"]) == (4, "released")
    assert [(e["row"], e["code"]) for e in receipt["row_errors"]] == [(6, "DUPLICATE_ROW")]
    assert "与第 5 行完全相同" in receipt["row_errors"][0]["message_zh"]
    assert receipt["kept_previous"] == []
    key = w.upload("ZJ", "complaints", [complaint("ZJ-C1", zj), complaint("ZJ-C1", zj)])
    receipt = w.receipt(w.ingest()[key])
    assert [(e["row"], e["code"]) for e in receipt["row_errors"]] == [(3, "DUPLICATE_ROW")]
    w.publish()
    assert w.merchant(codes[3])["verdict"] == "trusted"
    assert (w.merchant(zj)["complaints_12m"], w.merchant(zj)["unresolved_12m"]) == (1, 1)


def test_copies_that_disagree_and_end_nothing_are_still_refused(tmp_path):
    """Guard: two 有效 rows of JS-1 with different validity ends. Neither pauses or ends the
    filing, and which end is right cannot be told: both are refused, as before, and X keeps
    its previous row."""
    w = CouncilWorld(tmp_path)
    x, _, _ = w.three_listed("JS")
    key = w.upload("JS", "merchants", [filing("JS", "JS-1", x, **{"Valid Until": "2028-06-30"}),
                                       filing("JS", "JS-1", x, **{"Valid Until": "2026-12-31"})])
    receipt = w.receipt(w.ingest()[key])
    assert [(e["row"], e["code"]) for e in receipt["row_errors"]] == [
        (2, "DUPLICATE_KEY"), (3, "DUPLICATE_KEY")]
    w.publish()
    assert w.merchant(x)["verdict"] == "trusted"
