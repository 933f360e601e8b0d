"""Gift products and gift scores do not depend on the order of the evaluation rows: the same
evaluations, read in any order and by either polars engine, give bit-identical unrounded
dimensions, ``overall`` and gift scores, and so the same published values and ranks."""

from __future__ import annotations

import random

import polars as pl
import pytest
from staged_rows import evaluation, inputs_of, staged_frame, uscc

from registry.build.columns import PRODUCT_KEY
from registry.build.products import gift_products, gift_scores
from registry.config.score_model import load_score_model
from registry.config.settings import PROJECT_ROOT

MODEL = load_score_model(PROJECT_ROOT / "config", 1).model
DIMENSIONS = MODEL.gift_products.dimensions
# Scores spanning several magnitudes, most of them inexact in binary: their floating-point sum
# depends on the order in which they are added.
POINTS = (0.1, 0.2, 0.7, 7.3, 9.99, 5.55, 1 / 3, 2 / 3, 1e-3, 1e-7)


def _evaluations() -> pl.DataFrame:
    """About 6,000 evaluations of 60 products of 12 merchants, by 3 to 150 evaluators each,
    so that some products are trimmed and some are not."""
    rng = random.Random(19)
    rows = [
        evaluation(
            product_id=f"P{p:03d}", uscc=uscc("33", p % 12), category=("tea", "pastry")[p % 2],
            evaluator_id=f"E{e:03d}", **{d: rng.choice(POINTS) for d in DIMENSIONS},
        )
        for p in range(60)
        for e in range(3 if p % 10 == 0 else rng.randint(50, 150))
    ]
    return staged_frame("gift_evaluations", rows)


EVALUATIONS = _evaluations()


def _built(evaluations: pl.DataFrame, engine: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    products = gift_products(inputs_of(gift_evaluations=evaluations).gift_evaluations, MODEL)
    return (
        products.collect(engine=engine).sort(PRODUCT_KEY),
        gift_scores(products).collect(engine=engine).sort("uscc"),
    )


def test_the_evaluations_are_ones_whose_sums_depend_on_the_order_of_addition():
    by_product = EVALUATIONS.group_by("product_id").agg(pl.col("quality"))["quality"]
    assert any(sum(v) != sum(sorted(v)) for v in by_product.to_list())


@pytest.mark.parametrize("engine", ["in-memory", "streaming"])
def test_products_and_gift_scores_do_not_depend_on_the_order_of_the_evaluations(engine):
    products, scores = _built(EVALUATIONS, engine)
    assert products.height == 60 and scores.height == 12
    for seed in range(4):
        shuffled = EVALUATIONS.sample(fraction=1.0, shuffle=True, seed=seed)
        reordered_products, reordered_scores = _built(shuffled, engine)
        # Unrounded, so equal here means bit-identical (no zero or NaN in these scores).
        for column in (*DIMENSIONS, "overall", "rank_in_category"):
            assert reordered_products[column].equals(products[column]), (seed, column)
        assert reordered_scores["gift_score"].equals(scores["gift_score"]), seed
