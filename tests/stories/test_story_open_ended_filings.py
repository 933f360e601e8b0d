"""A filing granted without an end, whose 有效期至 the office writes 长期 (docs/stories.md, "A
filing without an end")."""

from __future__ import annotations

from datetime import date

from council_world import CouncilWorld, filing, merchant_code
from typer.testing import CliRunner

from registry.cli import app

# How the published merchants table writes "no end" (contracts/merchants.odcs.yaml).
NO_END = date(9999, 12, 31)


def test_a_revocation_exported_with_no_end_date_is_published(tmp_path):
    """Jiangsu lists X, Y and Z, each valid until 2027-12-31. Its filing system grants some
    filings without an end and prints their 有效期至 as 长期; its export revoking X is one row
    with 有效期至 长期. Before, the row was refused as not a date (`DATE_INVALID`), X's earlier
    filing stayed in effect, and X stayed trusted. Now 长期 reads as no end: the revocation
    counts, and X is not listed."""
    w = CouncilWorld(tmp_path)
    x, y, _ = w.three_listed("JS")
    key = w.upload("JS", "merchants", [filing("JS", "JS-1", x, Status="撤销",
                                              **{"Valid Until": "长期"})])
    w.ingest_accepted(key, 1)
    w.publish()
    assert w.merchant(x) is None
    assert w.changes()[x] == "removed"
    assert w.merchant(y)["verdict"] == "trusted"


def test_merchants_filed_without_an_end_are_listed_with_no_end(tmp_path, monkeypatch):
    """Zhejiang files two new merchants without an end, one 长期 and one 长期有效, and gives a
    third merchant a second filing without an end beside its dated one. Before, the three rows
    were refused and neither new merchant was listed. Now all are listed and trusted, and an
    app reads their validity as 9999-12-31, the contract's "no end"; the batch is not held for
    a validity beyond the twenty years the gate finds plausible for a dated filing."""
    w = CouncilWorld(tmp_path)
    u, v, t = (merchant_code("ZJ", n) for n in (1, 2, 3))
    key = w.upload("ZJ", "merchants", [
        filing("ZJ", "ZJ-1", u, **{"Valid Until": "长期"}),
        filing("ZJ", "ZJ-2", v, **{"Valid Until": "长期有效"}),
        filing("ZJ", "ZJ-3", t, **{"Valid Until": "2027-06-30"}),
        filing("ZJ", "ZJ-4", t, **{"Valid Until": "长期"}),
    ])
    receipt = w.receipt(w.ingest()[key])
    assert (receipt["accepted"], receipt["row_errors"]) == (4, []), receipt["row_errors"]
    assert receipt["batch_status"] == "released", receipt.get("held_reasons")
    w.publish()
    for code in (u, v, t):
        listed = w.merchant(code)
        assert (listed["verdict"], listed["valid_until"]) == ("trusted", NO_END)
    # What a clerk answering a consumer's call reads.
    monkeypatch.setenv("REGISTRY_STORAGE_URI", w.storage.root_uri)
    for command in (["lookup", u], ["show", "--uscc", u]):
        shown = CliRunner().invoke(app, command)
        assert shown.exit_code == 0, shown.output
        assert "valid until 长期 / no end" in shown.output


def test_no_end_is_read_only_where_a_filing_ends(tmp_path):
    """Guard: 长期 says when a filing ends, not when it starts. In 有效期自 it is refused as
    not a date, with the word shown, and the merchant is not listed from that row."""
    w = CouncilWorld(tmp_path)
    x = merchant_code("AH", 1)
    key = w.upload("AH", "merchants", [filing("AH", "AH-1", x, **{"Valid From": "长期"})])
    receipt = w.receipt(w.ingest()[key])
    [error] = receipt["row_errors"]
    assert (error["column"], error["code"], error["value"]) == ("valid_from", "DATE_INVALID",
                                                                 "长期")
    w.publish()
    assert w.merchant(x) is None
