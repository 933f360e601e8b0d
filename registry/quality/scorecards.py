"""Per-region data-quality scorecards of an ingest run: computed from the batch records
(:func:`region_scorecards`, pure) and stored with the trend against the region's previous card
(:func:`write_scorecards`)."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from registry import ledger
from registry.config.quality import load_quality_config
from registry.config.regions import RegionConfig, load_regions
from registry.config.settings import Settings
from registry.storage import NotFound, Storage
from registry.storage.layout import latest_scorecard_key, scorecard_key


def region_scorecards(
    records: Iterable[ledger.BatchRecord], regions: RegionConfig, *, run_batches: Iterable[str],
    released: Iterable[str], previous: Mapping[str, Mapping[str, Any]], top: int, at: datetime,
) -> dict[str, dict[str, Any]]:
    """Per configured region, the data-quality scorecard of one ingest run (pure).

    Over the batches of ``run_batches`` (this run's): ``rows_received``, ``rows_accepted``,
    ``accepted_pct``, ``checks_evaluated``, ``checks_passed``, ``checks_passed_pct`` (batch
    gate expectations) and ``top_failing_checks`` (the ``top`` most frequent row quarantine and
    batch gate failure codes with counts, most frequent first). ``held_batches`` lists every
    batch of the region held now (not in ``released``). ``trend`` compares with ``previous``
    (the region's last scorecard): the change of accepted_pct, checks_passed_pct and held
    batches, None for a first card or a value missing on either side."""
    in_run = set(run_batches)
    records = list(records)
    cards: dict[str, dict[str, Any]] = {}
    failing: dict[str, Counter[str]] = {code: Counter() for code in regions.regions}
    for code, region in regions.regions.items():
        cards[code] = {
            "region": code, "name_zh": region.name_zh, "name_en": region.name_en,
            "at": at.isoformat(), "batches": 0, "rows_received": 0, "rows_accepted": 0,
            "checks_evaluated": 0, "checks_passed": 0, "held_batches": [],
        }
    held = {r.batch_id for r in ledger.held_unreleased(records, set(released))}
    for record in sorted(records, key=lambda r: (r.region, r.dataset, r.order)):
        card = cards.get(record.region)
        if card is None:
            continue
        quality = record.quality or {}
        if record.batch_id in held:
            card["held_batches"].append({
                "batch_id": record.batch_id, "dataset": record.dataset,
                "reasons": list(record.held_reasons), "data_docs": record.data_docs,
            })
        if record.batch_id not in in_run:
            continue
        card["batches"] += 1
        card["rows_received"] += record.rows_in
        card["rows_accepted"] += record.accepted
        card["checks_evaluated"] += int(quality.get("evaluated") or 0)
        card["checks_passed"] += int(quality.get("passed") or 0)
        failing[record.region].update(record.error_counts)
        failing[record.region].update(f["code"] for f in quality.get("failures") or ())
    for code, card in cards.items():
        card["accepted_pct"] = (round(100 * card["rows_accepted"] / card["rows_received"], 1)
                                if card["rows_received"] else None)
        card["checks_passed_pct"] = (
            round(100 * card["checks_passed"] / card["checks_evaluated"], 1)
            if card["checks_evaluated"] else None)
        card["top_failing_checks"] = [
            {"code": c, "count": n}
            for c, n in sorted(failing[code].items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        ]
        before = previous.get(code)
        card["trend"] = None if before is None else {
            "previous_at": before.get("at"),
            **{f"{name}_change": _change(card.get(name), before.get(name))
               for name in ("accepted_pct", "checks_passed_pct")},
            "held_batches_change": len(card["held_batches"]) - len(
                before.get("held_batches") or []),
        }
    return cards


def _change(now: float | None, before: float | None) -> float | None:
    return None if now is None or before is None else round(now - before, 1)


def write_scorecards(storage: Storage, settings: Settings,
                     run_batches: Sequence[tuple[str, str, str]], *, now: datetime | None = None,
                     ) -> dict[str, str]:
    """Write each region's scorecard of the ingest run that committed ``run_batches``
    ((dataset, region, batch id) each) to ``reports/scorecards/{region}/{run_id}.json`` and
    ``.../latest.json``; return region -> key. The trend is against each region's previous
    ``latest.json``.

    A card reads the run's records and the held ones (the ledger's held index), which are all
    :func:`region_scorecards` looks at: never every record the ledger ever committed."""
    now = now or datetime.now(UTC)
    config = load_quality_config(settings.config_dir)
    regions = load_regions(settings.config_dir)
    run = ledger.read_batch_records(storage, run_batches)
    released = ledger.released_ids(storage)
    held = ledger.held_batches(storage, released=released)
    records = list({(r.dataset, r.region, r.batch_id): r for r in [*run, *held]}.values())
    previous = {}
    for code in regions.regions:
        with contextlib.suppress(NotFound):
            previous[code] = json.loads(storage.read_bytes(latest_scorecard_key(code)))
    cards = region_scorecards(records, regions, run_batches=[ref[2] for ref in run_batches],
                              released=released,
                              previous=previous, top=config.scorecards.top_failing_checks, at=now)
    run_id = now.strftime("%Y%m%dT%H%M%S%fZ")
    keys = {}
    for code, card in cards.items():
        data = json.dumps(card, ensure_ascii=False, indent=2).encode("utf-8")
        storage.write_bytes(scorecard_key(code, run_id), data)
        storage.write_bytes(latest_scorecard_key(code), data)
        keys[code] = scorecard_key(code, run_id)
    return keys
