"""Reading the build's inputs: the staged rows of the batches in effect
(:func:`registry.ledger.in_effect`), each labelled with its batch id and its rank in ledger
order (:data:`~registry.build.columns.ORDER_COLUMN`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import polars as pl

from registry import ledger
from registry.build.columns import ORDER_COLUMN, STAGED_COLUMNS, StagedInputs, StagedSchemaError
from registry.config.contracts import within_region
from registry.ledger import BatchRecord, InEffect
from registry.storage import Storage
from registry.storage.layout import DATASETS, quarantine_prefix, staged_prefix


def staged_batch(storage: Storage, record: BatchRecord, order: int) -> pl.LazyFrame:
    """The staged rows ``record`` reads (a duplicate's come from the batch that first staged
    them), labelled with its batch id and its rank in ledger order."""
    where = staged_prefix(record.dataset, record.region, record.stages)
    expected = STAGED_COLUMNS[record.dataset]
    scan = storage.scan_parquet(where + "*.parquet", hive_partitioning=False)
    schema = storage.retried_read(where, scan.collect_schema)
    problems = [
        f"{name} is {schema.get(name, 'missing')}, expected {dtype}"
        for name, dtype in expected.items()
        if schema.get(name) != dtype
    ]
    if problems:
        raise StagedSchemaError(f"{where}: " + "; ".join(problems))
    return scan.select(list(expected)).with_columns(
        pl.lit(record.batch_id).alias("_batch_id"),
        pl.lit(order, dtype=pl.Int64).alias(ORDER_COLUMN),
    )


def quarantined_keys(storage: Storage, record: BatchRecord, key: Sequence[str]
                      ) -> pl.LazyFrame:
    """The natural keys of the rows ``record`` quarantined (as the council wrote them)."""
    columns = within_region(key)
    quarantined = storage.scan_parquet(
        quarantine_prefix(record.dataset, record.region, record.stages) + "*.parquet",
        hive_partitioning=False)
    return quarantined.select(pl.col(c).cast(pl.String) for c in columns).drop_nulls()


def kept_rows(storage: Storage, record: BatchRecord, key: Sequence[str],
              previous: pl.LazyFrame) -> pl.LazyFrame:
    """The rows of ``previous`` (the rows in effect just before ``record``, a complete list
    with quarantined rows) that the list keeps: a typo never withdraws a filing, only leaving
    it out of the list does. Kept are the rows of the filings whose rows it quarantined (by
    natural key), and every row of the merchants whose refused rows named no filing
    (``record.kept_merchants``)."""
    keys = within_region(key)
    quarantined = quarantined_keys(storage, record, key)
    kept = previous.join(quarantined, on=keys, how="semi")
    if not record.kept_merchants:
        return kept
    of_merchants = previous.filter(pl.col("uscc").is_in(record.kept_merchants)).join(
        quarantined, on=keys, how="anti")
    return pl.concat([kept, of_merchants], how="vertical")


def rows_in_effect(storage: Storage, effect: InEffect, order: Mapping[str, int],
                    natural_keys: Mapping[str, Sequence[str]]
                    ) -> list[pl.LazyFrame]:
    frames = [staged_batch(storage, record, order[record.batch_id])
              for record in effect.batches]
    replace = effect.replace
    if replace is not None and effect.before is not None and replace.quarantined:
        frames.extend(
            kept_rows(storage, replace, natural_keys[effect.dataset], frame)
            for frame in rows_in_effect(storage, effect.before, order, natural_keys)
        )
    return frames


def staged_inputs(storage: Storage, effects: Iterable[InEffect],
                  natural_keys: Mapping[str, Sequence[str]]) -> StagedInputs:
    """Lazy scans of the staged rows that count (:func:`registry.ledger.in_effect`), only the
    columns the build reads plus :data:`ORDER_COLUMN`. Raises :class:`StagedSchemaError` for
    a batch whose columns differ from the ingest contract, naming the batch and the columns."""
    effects = list(effects)
    ranked = sorted({(r.order, r.batch_id) for e in effects for r in e.all_batches()})
    order = {batch_id: rank for rank, (_, batch_id) in enumerate(ranked)}
    frames: dict[str, list[pl.LazyFrame]] = {dataset: [] for dataset in DATASETS}
    for effect in effects:
        if effect.dataset not in frames:
            raise ValueError(f"{effect.region}: unknown dataset {effect.dataset!r}")
        frames[effect.dataset].extend(rows_in_effect(storage, effect, order, natural_keys))
    empty = {ORDER_COLUMN: pl.Int64}
    return StagedInputs(
        **{
            dataset: pl.concat(parts, how="vertical")
            if parts
            else pl.LazyFrame(schema={**STAGED_COLUMNS[dataset], **empty})
            for dataset, parts in frames.items()
        }
    )


def withdrawn_by_release(storage: Storage, record: BatchRecord,
                         natural_keys: Mapping[str, Sequence[str]]) -> list[str]:
    """The filings (natural keys beyond the region, joined by ``/``) in effect for ``record``'s
    dataset and region now that would no longer be once the held batch ``record`` is released:
    for a complete list, those it leaves out (and does not keep for a refused row). Reads the
    stream's records and the staged rows in effect, with and without it; a question for a data
    engineer about to release, not for the build."""
    records = ledger.batch_records(storage, dataset=record.dataset, region=record.region)
    released = ledger.released_ids(storage)
    order = {r.batch_id: rank for rank, r in enumerate(records)}
    key = natural_keys[record.dataset]
    columns = within_region(key)

    def filings(with_record: bool) -> set[tuple[str, ...]]:
        effects = ledger.in_effect(ledger.publishable(
            records, released | {record.batch_id} if with_record else released))
        frames = [frame.select(pl.col(c).cast(pl.String) for c in columns)
                  for effect in effects for frame in rows_in_effect(storage, effect, order,
                                                                    natural_keys)]
        if not frames:
            return set()
        return set(pl.concat(frames, how="vertical").unique().collect().iter_rows())

    return sorted("/".join(k) for k in filings(False) - filings(True))
