"""``datacontract test`` on a published snapshot: every table passes its contract, and data that
breaks a contract fails it, naming the column."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from contract_checks import table_failures
from contracts_world import Published

from registry.config.published import load_published_contracts
from registry.publish.tables import TABLE_ORDER

CONTRACTS = load_published_contracts()


def test_the_world_has_every_verdict_and_every_change(published: Published) -> None:
    merchants = pl.read_parquet(published.file("merchants"))
    changes = pl.read_parquet(published.file("changes"))
    assert set(merchants["verdict"]) == {"trusted", "listed", "disqualified"}
    assert set(changes["change"]) == {"added", "removed", "updated"}
    assert merchants["name_conflict"].any() and merchants["gift_score"].is_not_null().any()
    for table in TABLE_ORDER:
        assert pl.read_parquet(published.file(table)).height > 0, table


@pytest.mark.parametrize("table", TABLE_ORDER)
def test_each_published_table_passes_datacontract_test(published: Published, table: str
                                                       ) -> None:
    contract = CONTRACTS[table]
    path = published.file(table)
    assert table_failures(contract.raw, path) == []
    # datacontract-cli reads Parquet into the contract's types; the file's own are held here.
    assert pl.read_parquet_schema(path) == contract.schema


def _null_uscc(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(None)
                              .otherwise(pl.col("uscc")).alias("uscc"))


def _unknown_verdict(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.lit("probation").alias("verdict"))


def _unknown_disqualification(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.lit(["fined"]).alias("disqualifications"))


def _score_over_100(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("score") + 100)


def _repeated_merchant(frame: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([frame, frame.head(1)])


BROKEN = {
    "a null uscc": (_null_uscc, "uscc"),
    "an unknown verdict": (_unknown_verdict, "verdict"),
    "an unknown disqualification": (_unknown_disqualification, "disqualifications[]"),
    "a score over 100": (_score_over_100, "score"),
    "a merchant twice": (_repeated_merchant, "uscc"),
}


@pytest.mark.parametrize(("breaking", "column"), BROKEN.values(), ids=list(BROKEN))
def test_datacontract_test_fails_merchants_that_break_the_contract(
    published: Published, tmp_path: Path, breaking: Callable[[pl.DataFrame], pl.DataFrame],
    column: str,
) -> None:
    path = tmp_path / "merchants.parquet"
    breaking(pl.read_parquet(published.file("merchants"))).write_parquet(path)
    failures = table_failures(CONTRACTS["merchants"].raw, path)
    assert any(f"({column})" in failure for failure in failures), failures
