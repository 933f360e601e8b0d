"""A clerk pastes a credit code from a chat message or a web page, and an invisible character
comes with it: a zero-width space, a byte-order mark, a direction mark. The cell looks exactly
like the code, and the council has filed that merchant as far as anyone can see. Invisible
characters carry nothing a council means, so they are taken out of every cell before it is read;
a copy of a key that differs only by one is the same key."""

from __future__ import annotations

from council_world import CouncilWorld, filing, merchant_code

ZERO_WIDTH_SPACE, BYTE_ORDER_MARK, LEFT_TO_RIGHT_MARK = "\u200b", "\ufeff", "\u200e"


def test_a_code_pasted_with_a_zero_width_space_is_the_code(tmp_path):
    """Shanghai's list has X's code pasted with a zero-width space in front, Y's filing id with
    a byte-order mark after it, and Z's name with a direction mark inside. Every row is accepted,
    and the app reads X, Y and Z listed and trusted under their plain codes and names."""
    w = CouncilWorld(tmp_path)
    x, y, z = (merchant_code("SH", n) for n in (1, 2, 3))
    key = w.upload("SH", "merchants", [
        filing("SH", "SH-1", ZERO_WIDTH_SPACE + x),
        filing("SH", "SH-2" + BYTE_ORDER_MARK, y),
        filing("SH", "SH-3", z, **{"Merchant Name": f"上海{LEFT_TO_RIGHT_MARK}久光百货有限公司"}),
    ])
    w.ingest_accepted(key, 3)
    w.publish()
    assert {u: w.merchant(u)["verdict"] for u in (x, y, z)} == dict.fromkeys((x, y, z), "trusted")
    assert w.merchant(z)["name"] == "上海久光百货有限公司"


def test_a_revocation_whose_filing_id_hides_a_zero_width_space_revokes_that_filing(tmp_path):
    """Jiangsu files X as JS-1, then sends one row revoking JS-1, its id pasted with a trailing
    zero-width space. It is the same filing: X has no active filing left and is not listed."""
    w = CouncilWorld(tmp_path)
    x, y, z = w.three_listed("JS")
    w.upload("JS", "merchants", [filing("JS", "JS-1" + ZERO_WIDTH_SPACE, x, Status="revoked")])
    w.ingest()
    w.publish()
    assert w.merchant(x) is None
    assert {w.merchant(u)["verdict"] for u in (y, z)} == {"trusted"}
