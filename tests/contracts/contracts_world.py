"""A published world for the contract tests (imported by conftest.py): councils' uploads through
the real ingest and two publications, so that every published table has rows and every verdict
and change occurs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from council_world import CouncilWorld, complaint, filing, inspection, merchant_code
from fixtures.council_files import FIXTURES

from registry.snapshot.reader import Snapshot, open_snapshot
from registry.storage import LocalStorage

# The merchant behind gift product G-001 of the Zhejiang evaluation fixture.
GIFT_MERCHANT = "91330106800010012R"


@dataclass(frozen=True)
class Published:
    snapshot: Snapshot
    root: Path

    def file(self, table: str) -> Path:
        """The snapshot's Parquet file of ``table`` on local disk."""
        return self.root / self.snapshot.key(table)


def build_world(root: Path) -> Published:
    """Jiangsu and Zhejiang both list X and Y, which promises nothing, under two names each;
    Jiangsu lists Z, which fails an Anhui inspection seriously, and W; Shanghai lists S1 and S2;
    Zhejiang lists the gift merchant G and evaluates its products; consumers complain about X in
    two regions. Then Jiangsu revokes X (still listed from Zhejiang) and suspends W (listed
    nowhere else), and Anhui lists A: the second snapshot has merchants trusted, listed and
    disqualified, and changes added, removed and updated."""
    w = CouncilWorld(root)
    assert isinstance(w.storage, LocalStorage)
    x, y, z, w_ = (merchant_code("JS", n) for n in (1, 2, 3, 4))
    s1, s2 = (merchant_code("SH", n) for n in (1, 2))
    no_promises = dict.fromkeys(("Chinese Label", "Traceable", "No Reason Return 7d",
                                 "Offline No Reason Return", "Advance Compensation"), "N")
    w.upload("JS", "merchants", [filing("JS", "JS-1", x), filing("JS", "JS-2", y, **no_promises),
                                 filing("JS", "JS-3", z), filing("JS", "JS-4", w_)])
    w.upload("ZJ", "merchants", [
        filing("ZJ", "ZJ-1", x),
        filing("ZJ", "ZJ-3", y, **no_promises),
        filing("ZJ", "ZJ-2", GIFT_MERCHANT, Program="specialty_gift", **{"Origin Countries": ""}),
    ])
    w.upload("SH", "merchants", [filing("SH", "SH-1", s1), filing("SH", "SH-2", s2)])
    w.upload("JS", "complaints", [complaint("JS-C1", x)])
    w.upload("ZJ", "complaints", [
        complaint("ZJ-C1", x, Category="after_sales", Status="resolved",
                  **{"Resolved On": "2026-06-11", "Recovered Amount CNY": "300"}),
        complaint("ZJ-C2", GIFT_MERCHANT, Category="price", **{"Received On": "2026-09-15"}),
    ])
    w.upload("AH", "inspections", [inspection("AH-I1", z, 检测结论="fail", 严重程度="serious"),
                                   inspection("AH-I2", x)])
    w.upload("ZJ", "gift_evaluations", (FIXTURES / "gift_evaluations_zj.parquet").read_bytes(),
             name="evaluations.parquet")
    w.ingest()
    w.publish()

    w.upload("JS", "merchants", [filing("JS", "JS-1", x, Status="revoked")])
    w.upload("JS", "merchants", [filing("JS", "JS-4", w_, Status="suspended")])
    w.upload("AH", "merchants", [filing("AH", "AH-1", merchant_code("AH", 1))])
    w.ingest()
    w.publish()
    return Published(open_snapshot(w.storage), w.storage.root)
