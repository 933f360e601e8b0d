"""``bench.scaling``: a registry cut into USCC ranges, each built alone, publishes the tables of
the whole build once the ranges are combined; the ranges cover every USCC once; small row
groups let a range's scan skip what its USCC statistics rule out."""

from __future__ import annotations

from itertools import pairwise

import polars as pl

from bench.scaling import (
    in_one_process,
    prepared_state,
    products_ranked,
    ranges_by_statistics,
    state_layout,
    uscc_ranges,
    with_row_groups,
)


def test_ranges_built_one_at_a_time_give_the_whole_builds_tables(tmp_path):
    root = prepared_state(300, seed=3, data=tmp_path)
    ranges = uscc_ranges(root, 3)
    assert len(ranges) == 3
    assert all(first <= last for first, last in ranges)
    assert all(a[1] < b[0] for a, b in pairwise(ranges))

    whole = in_one_process(str(root), [None])
    split = in_one_process(str(root), ranges)
    assert split["combine"]["sha256"] == whole["combine"]["sha256"]
    merchants = [r["merchants"] for r in split["ranges"]]
    assert sum(merchants) == whole["ranges"][0]["merchants"] > 0 and min(merchants) > 0
    assert split["empty_range"]["merchants"] == split["empty_range"]["products"] == 0

    layout = state_layout(with_row_groups(root, 64))
    every = ranges_by_statistics(layout, None)
    first = ranges_by_statistics(layout, ranges[0])
    assert every["row_groups"] == every["row_groups_total"] > len(layout)
    assert 0 < first["row_groups"] < every["row_groups"]


def test_products_are_ranked_across_every_range():
    """Two ranges each hold the best product of a category; combined, one of them is second."""
    def product(uscc: str, product_id: str, overall: float, rank: int) -> dict:
        return {"uscc": uscc, "region": "ZJ", "product_id": product_id,
                "evaluation_round": "2025", "category": "茶叶", "overall": overall,
                "rank_in_category": rank}

    ranges = pl.DataFrame([product("A", "P1", 8.5, 1), product("B", "P2", 9.0, 1),
                           product("B", "P3", 8.5, 2)])
    ranked = products_ranked(ranges)
    assert ranked.get_column("product_id").to_list() == ["P2", "P1", "P3"]
    assert ranked.get_column("rank_in_category").to_list() == [1, 2, 2]
