"""Stories of the published verdict (docs/architecture.md §10): a consumer app that reads one
column, whichever it is, cannot take a disqualified or unlisted merchant for a good one."""

from __future__ import annotations

from council_world import CouncilWorld, complaint, filing, merchant_code


def test_an_app_showing_only_the_grade_cannot_advertise_a_revoked_merchant(tmp_path):
    """Jiangsu lists three merchants making every commitment: all earn grade A. Then Jiangsu
    revokes X in one region while Zhejiang keeps it listed. A shopping app that shows only the
    grade column, or only the verdict column, must not show X as a good merchant."""
    w = CouncilWorld(tmp_path)
    x, y, z = (merchant_code("JS", n) for n in (1, 2, 3))
    w.upload("JS", "merchants", [filing("JS", "JS-1", x), filing("JS", "JS-2", y),
                                 filing("JS", "JS-3", z)])
    w.upload("ZJ", "merchants", [filing("ZJ", "ZJ-1", x), filing("ZJ", "ZJ-2", y),
                                 filing("ZJ", "ZJ-3", z)])
    w.ingest()
    w.publish()
    assert (w.merchant(x)["grade"], w.merchant(x)["verdict"]) == ("A", "trusted")

    w.upload("JS", "merchants", [filing("JS", "JS-1", x, Status="revoked"),
                                 filing("JS", "JS-2", y), filing("JS", "JS-3", z)])
    w.ingest()
    w.publish()
    row = w.merchant(x)
    assert row is not None, "X is still listed from Zhejiang"
    assert row["grade"] is None
    assert row["verdict"] == "disqualified"
    assert row["trusted"] is False
    assert row["disqualifications"] == ["status_revoked"]
    # The score still explains itself: the commitments earn their points.
    assert row["score"] >= 85
    assert {w.merchant(u)["verdict"] for u in (y, z)} == {"trusted"}


def test_a_merchant_below_the_trusted_grades_is_listed_not_trusted(tmp_path):
    """Anhui lists X, which promises nothing and has unresolved complaints within the limit:
    its score gives no trusted grade. The app reads the verdict ``listed``, not ``trusted``."""
    w = CouncilWorld(tmp_path)
    x, y, z = (merchant_code("AH", n) for n in (1, 2, 3))
    no_promises = dict.fromkeys(("Chinese Label", "Traceable", "No Reason Return 7d",
                                 "Offline No Reason Return", "Advance Compensation"), "N")
    w.upload("AH", "merchants", [filing("AH", "AH-1", x, **no_promises),
                                 filing("AH", "AH-2", y), filing("AH", "AH-3", z)])
    w.upload("AH", "complaints", [complaint("C-1", x, Status="unresolved"),
                                  complaint("C-2", y), complaint("C-3", z)])
    w.ingest()
    w.publish()
    row = w.merchant(x)
    assert row["grade"] not in ("A", "B")
    assert (row["verdict"], row["trusted"], row["disqualifications"]) == ("listed", False, [])
