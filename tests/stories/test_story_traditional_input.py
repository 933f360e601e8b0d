"""A clerk types with a Traditional-Chinese input method, or pastes from an importer's system that
writes Traditional characters: 撤銷 for 撤销, 暫停 for 暂停, 韓國 for 韩国. The registry already
matches merchant names across the two scripts (OpenCC t2s); a status, a yes/no, a city or a
country of origin is the same word in either script too, and means the same thing."""

from __future__ import annotations

from council_world import CouncilWorld, filing, merchant_code


def test_a_revocation_typed_in_traditional_characters_revokes_the_merchant(tmp_path):
    """Zhejiang lists three merchants, then sends its list again with X's status typed 撤銷 and
    Y's 暫停. A consumer app must no longer read X or Y as trusted."""
    w = CouncilWorld(tmp_path)
    x, y, z = w.three_listed("ZJ")
    assert {w.merchant(u)["verdict"] for u in (x, y, z)} == {"trusted"}

    key = w.upload("ZJ", "merchants", [filing("ZJ", "ZJ-1", x, Status="撤銷"),
                                       filing("ZJ", "ZJ-2", y, Status="暫停"),
                                       filing("ZJ", "ZJ-3", z)])
    w.ingest_accepted(key, 3)
    w.publish()
    assert w.merchant(x) is None or w.merchant(x)["trusted"] is False
    assert w.merchant(y) is None or w.merchant(y)["trusted"] is False
    assert w.merchant(z)["verdict"] == "trusted"


def test_yes_no_city_and_countries_in_traditional_characters_are_read(tmp_path):
    """Jiangsu's row names the city 無錫 (无锡) and the origins 韓國、美國 (韩国、美国), and
    refuses advance compensation with 否: every value is read as its Simplified twin, and the
    published row says so."""
    w = CouncilWorld(tmp_path)
    x, y, z = (merchant_code("JS", n) for n in (1, 2, 3))
    key = w.upload("JS", "merchants", [
        filing("JS", "JS-1", x, City="無錫", **{"Origin Countries": "韓國、美國",
                                                 "Advance Compensation": "否"}),
        filing("JS", "JS-2", y), filing("JS", "JS-3", z)])
    w.ingest_accepted(key, 3)
    w.publish()
    row = w.merchant(x)
    assert row is not None
    assert sorted(row["origin_countries"]) == ["KR", "US"]
    assert row["advance_compensation"] is False
