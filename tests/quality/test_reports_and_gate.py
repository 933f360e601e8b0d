"""Data Docs and scorecards land in storage after a run, on every backend; a registry that
fails its suite is not published and latest stays where it was."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime

import polars as pl
import pytest
from counted_reads import CountingReads
from gate_uploads import inspections_csv, land, merchants_csv
from staged_rows import batch_record
from typer.testing import CliRunner

from registry import ledger
from registry.cli import app
from registry.config.published import load_published_contracts
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.ingest.pipeline import ingest_pending
from registry.publish import RegistrySuiteFailed, publish_snapshot
from registry.publish import protocol as publish_protocol
from registry.publish.tables import TableWriter
from registry.quality import region_scorecards, write_scorecards
from registry.report import report_data
from registry.snapshot.reader import open_snapshot, read_latest
from registry.storage import LocalStorage, Storage
from registry.storage.layout import (
    DATA_DOCS_STATIC_PREFIX,
    batch_docs_prefix,
    latest_scorecard_key,
    refused_docs_prefix,
)

# The pipeline on local disk and S3; RGW's S3 semantics: tests/storage, tests/publish.
pytestmark = pytest.mark.backends("local", "s3")

SETTINGS = Settings(_env_file=None)
AS_OF = date(2026, 11, 30)


def _keys(storage: Storage, prefix: str) -> list[str]:
    return [info.key for info in storage.list(prefix)]


def _release(storage: Storage, batch_id: str) -> ledger.Release | None:
    """The release recorded for a committed batch."""
    (record,) = ledger.find_batch(storage, batch_id)
    return ledger.read_release(storage, record)


def test_data_docs_and_scorecards_are_in_storage_after_a_run(storage: Storage,
                                                              site_builds) -> None:
    # Shanghai's complete list is mostly suspended (held); Anhui's upsert of inspections is not
    # a complete list, so its pass rate is not judged (released).
    land(storage, "landing/SH/merchants/m.csv", merchants_csv(6, suspended=4))
    land(storage, "landing/AH/inspections/t.csv", inspections_csv(["pass", "fail", "fail"]))
    results = {r.region: r for r in ingest_pending(storage, SETTINGS).results}
    # The run's two sites are built once, together.
    assert [sorted(build) for build in site_builds] == [sorted(
        batch_docs_prefix(r.dataset, r.region, r.batch_id) for r in results.values())]

    for region, dataset in (("SH", "merchants"), ("AH", "inspections")):
        prefix = batch_docs_prefix(dataset, region, results[region].batch_id)
        pages = _keys(storage, prefix)
        assert prefix + "index.html" in pages
        assert any("/validations/" in k and k.endswith(".html") for k in pages)
        index = storage.read_bytes(prefix + "index.html").decode()
        assert f"staged_{dataset}" in index
    # Static files are stored once, and pages link to them there.
    assert DATA_DOCS_STATIC_PREFIX + "images/favicon.ico" in _keys(storage,
                                                                   DATA_DOCS_STATIC_PREFIX)
    page = storage.read_bytes(batch_docs_prefix("merchants", "SH", results["SH"].batch_id)
                              + "index.html").decode()
    # From reports/batches/merchants/SH/{batch}/data_docs/ up to reports/.
    assert '"../../../../../data_docs/static/images/favicon.ico"' in page

    cards = {r: json.loads(storage.read_bytes(latest_scorecard_key(r)))
             for r in ("SH", "JS", "ZJ", "AH")}
    ah = cards["AH"]
    assert ah["rows_received"] == 3 and ah["accepted_pct"] == 100.0
    assert ah["checks_passed_pct"] == 100.0 and ah["held_batches"] == []
    sh = cards["SH"]
    assert sh["checks_passed"] == sh["checks_evaluated"] - 1
    assert sh["top_failing_checks"] == [{"code": "batch_implausible_distribution", "count": 1}]
    assert [h["batch_id"] for h in sh["held_batches"]] == [results["SH"].batch_id]
    assert cards["JS"]["rows_received"] == 0 and cards["JS"]["accepted_pct"] is None
    assert sh["trend"] is None
    assert len(_keys(storage, "reports/scorecards/SH/")) == 2  # this run's card and latest

    # The published snapshot carries the registry gate's Data Docs, linked from its report:
    # one site per table, built once, together.
    published = publish_snapshot(storage, SETTINGS, as_of=AS_OF)
    assert site_builds[1:] == [["merchants/", "products/"]]
    docs = f"reports/{published.snapshot_id}/data_docs/"
    assert {docs + "merchants/index.html", docs + "products/index.html"} <= set(
        _keys(storage, docs))
    data = report_data(storage, SETTINGS, published.snapshot_id)
    assert data.data_docs_links == ["data_docs/merchants/index.html",
                                    "data_docs/products/index.html"]
    versions = open_snapshot(storage).manifest.suite_versions
    assert versions["registry_merchants"].startswith("1.1.0+")


def test_the_next_run_shows_the_trend(tmp_path) -> None:
    storage = LocalStorage(tmp_path / "root")
    land(storage, "landing/SH/merchants/a.csv", merchants_csv(5, suspended=3))
    ingest_pending(storage, SETTINGS)
    land(storage, "landing/SH/merchants/b.csv", merchants_csv(5, start=100))
    ingest_pending(storage, SETTINGS)
    card = json.loads(storage.read_bytes(latest_scorecard_key("SH")))
    assert card["checks_passed_pct"] == 100.0
    assert card["trend"]["checks_passed_pct_change"] > 0
    assert card["trend"]["held_batches_change"] == 0  # the first batch is still held


def test_scorecards_rank_the_five_most_frequent_failures() -> None:
    regions = load_regions(SETTINGS.config_dir)
    records = [batch_record("B1", dataset="complaints", region="ZJ", status="held").model_copy(
        update={
            "rows_in": 10, "accepted": 4, "quarantined": 6,
            "error_counts": {"BAD_USCC": 3, "BAD_DATE": 2, "A": 1, "B": 1, "C": 1, "D": 1},
            "held_reasons": ["batch_implausible_distribution"],
            "quality": {"evaluated": 10, "passed": 9,
                        "failures": [{"code": "batch_implausible_distribution"}]},
        })]
    cards = region_scorecards(records, regions, run_batches=["B1"], released=[],
                              previous={"ZJ": {"accepted_pct": 50.0, "checks_passed_pct": 100.0,
                                               "held_batches": []}},
                              top=5, at=datetime(2026, 11, 30, tzinfo=UTC))
    zj = cards["ZJ"]
    assert zj["accepted_pct"] == 40.0 and zj["checks_passed_pct"] == 90.0
    assert [c["code"] for c in zj["top_failing_checks"]] == [
        "BAD_USCC", "BAD_DATE", "A", "B", "C"]
    assert zj["trend"]["accepted_pct_change"] == -10.0
    assert zj["trend"]["checks_passed_pct_change"] == -10.0
    assert zj["trend"]["held_batches_change"] == 1
    released = region_scorecards(records, regions, run_batches=[], released=["B1"],
                                 previous={}, top=5, at=datetime(2026, 11, 30, tzinfo=UTC))
    assert released["ZJ"]["held_batches"] == [] and released["ZJ"]["batches"] == 0


def test_a_registry_failing_its_suite_is_not_published(storage: Storage,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    land(storage, "landing/SH/merchants/m.csv", merchants_csv(4))
    ingest_pending(storage, SETTINGS)
    first = publish_snapshot(storage, SETTINGS, as_of=AS_OF)
    snapshots_before = _keys(storage, "registry/")

    real = publish_protocol.write_snapshot_tables

    def broken_build(*args, **kwargs):
        # A build bug: scores no longer add up and a merchant is trusted without a grade.
        built = real(*args, **kwargs)
        written = built.files["merchants"]
        merchants = pl.read_parquet(written.path).with_columns(
            (pl.col("score") + 7).alias("score"), pl.lit(True).alias("trusted"))
        writer = TableWriter(written.path, load_published_contracts()["merchants"])
        writer.write(merchants)
        writer.close()
        return replace(built, files={**built.files,
                                     "merchants": writer.written(written.part_rows)})

    monkeypatch.setattr(publish_protocol, "write_snapshot_tables", broken_build)
    with pytest.raises(RegistrySuiteFailed) as refused:
        publish_snapshot(storage, SETTINGS, as_of=AS_OF)
    codes = {f.code for r in refused.value.results for f in r.failures}
    assert "registry_score_not_sum" in codes
    assert "registry_score_not_sum" in str(refused.value)
    assert isinstance(refused.value, publish_protocol.PublishRefused)

    assert _keys(storage, "registry/") == snapshots_before
    latest, _ = read_latest(storage)
    assert latest.snapshot_id == first.snapshot_id
    # The refused run's Data Docs are kept for whoever investigates.
    (merchants,) = [r for r in refused.value.results if r.suite == "registry_merchants"]
    assert merchants.data_docs.startswith("reports/refused/")
    assert merchants.data_docs in _keys(storage, "reports/refused/")
    assert merchants.data_docs.startswith(refused_docs_prefix(merchants.data_docs.split("/")[2]))


def test_the_batches_commands_list_and_release_held_batches(tmp_path, monkeypatch) -> None:
    root = tmp_path / "root"
    monkeypatch.setenv("REGISTRY_STORAGE_URI", f"file://{root}")
    storage = LocalStorage(root)
    land(storage, "landing/SH/merchants/m.csv", merchants_csv(3, suspended=2))
    land(storage, "landing/AH/inspections/t.csv", inspections_csv(["pass", "fail", "fail"]))
    results = {r.region: r for r in ingest_pending(storage, SETTINGS).results}
    held = results["SH"].batch_id
    runner = CliRunner()

    listed = runner.invoke(app, ["batches", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    (entry,) = json.loads(listed.output)
    assert entry["batch_id"] == held and entry["status"] == "held"
    assert entry["held_reasons"] == ["batch_implausible_distribution"]
    assert "filings are active" in entry["reasons_en"][0]
    every = json.loads(runner.invoke(app, ["batches", "list", "--all", "--json"]).output)
    assert {b["batch_id"] for b in every} == {held, results["AH"].batch_id}

    unknown = runner.invoke(app, ["batches", "release", "20990101T000000000000Z-000000000000",
                                  "--reason", "x", "--by", "li"])
    assert unknown.exit_code == 1 and "no committed batch" in unknown.output
    not_held = runner.invoke(app, ["batches", "release", results["AH"].batch_id,
                                   "--reason", "x", "--by", "li"])
    assert not_held.exit_code == 1 and "not held" in not_held.output

    released = runner.invoke(app, ["batches", "release", held, "--reason",
                                   "核实属实：两家商户已暂停", "--by", "engineer-li"])
    assert released.exit_code == 0, released.output
    assert "engineer-li" in released.output
    record = _release(storage, held)
    assert (record.released_by, record.reason) == ("engineer-li", "核实属实：两家商户已暂停")
    assert runner.invoke(app, ["batches", "list"]).output.strip() == "no held batches"
    again = runner.invoke(app, ["batches", "release", held, "--reason", "x", "--by", "wang"])
    assert again.exit_code == 1 and "already released by engineer-li" in again.output

    # Without --by, the OS user is recorded. This complete list names other filings than the
    # first: its release withdraws those three, and says so until it is told their number.
    land(storage, "landing/SH/merchants/u.csv", merchants_csv(3, start=200, suspended=3))
    (second,) = ingest_pending(storage, SETTINGS).results
    unconfirmed = runner.invoke(app, ["batches", "release", second.batch_id, "--reason", "ok"])
    assert unconfirmed.exit_code == 1 and "withdraws 3 filing(s)" in unconfirmed.output
    by_os = runner.invoke(app, ["batches", "release", second.batch_id, "--reason", "ok",
                                "--withdraws", "3"])
    assert by_os.exit_code == 0, by_os.output
    import getpass
    assert _release(storage, second.batch_id).released_by == getpass.getuser()


def test_a_table_checked_in_parts_adds_its_parts_up(storage: Storage) -> None:
    """The registry gate reads a large table back in parts (one USCC range's rows each): a
    part with a build bug fails the table, every part has a Data Docs site of its own, and the
    result links the failing part's."""
    from staged_rows import stage_three_regions

    from registry.config.score_model import load_score_model
    from registry.publish.tables import snapshot_tables
    from registry.quality import registry_results

    stage_three_regions(storage)
    built = snapshot_tables(storage, SETTINGS, AS_OF, None)
    merchants = built.tables["merchants"]
    assert merchants.height >= 3
    broken = merchants.slice(2).with_columns((pl.col("score") + 7).alias("score"))
    parts = [merchants.slice(0, 2), broken]
    model = load_score_model(SETTINGS.config_dir, SETTINGS.score_model_version).model
    snapshot_id = "20261130T000000000000Z-0badc0de"
    merchants_result, products_result = registry_results(
        storage, SETTINGS, {"merchants": parts, "products": built.tables["products"]}, model,
        snapshot_id)
    assert products_result.success
    assert not merchants_result.success
    assert merchants_result.rows == merchants.height
    assert "registry_score_not_sum" in merchants_result.codes
    refused = refused_docs_prefix(snapshot_id)
    assert merchants_result.data_docs == f"{refused}merchants/part-0002/index.html"
    assert {f"{refused}merchants/part-000{i}/index.html" for i in (1, 2)} <= set(
        _keys(storage, refused))


def test_a_runs_scorecards_read_the_runs_and_the_held_records_only(storage: Storage) -> None:
    """A year of committed batches must not be read again by every ingest run: the cards
    come from this run's records and the held ones, and equal the cards computed from every
    record."""
    for n in range(1, 41):
        ledger.commit_batch(storage, batch_record(f"B{n}"))
    ledger.commit_batch(storage, batch_record("B41", status="held", region="JS"))
    run = [batch_record("B42", dataset="complaints"), batch_record("B43", status="held")]
    for record in run:
        ledger.commit_batch(storage, record)
    ledger.held_batches(storage)  # the store's first read indexes it, once
    counting = CountingReads(storage)
    at = datetime(2026, 11, 30, tzinfo=UTC)
    keys = write_scorecards(counting, SETTINGS,  # type: ignore[arg-type]
                            [(r.dataset, r.region, r.batch_id) for r in run], now=at)
    assert counting.record_reads == 4  # the run's two, then the held B41 and B43
    assert counting.release_listings == 1
    cards = {region: json.loads(storage.read_bytes(key)) for region, key in keys.items()}
    expected = region_scorecards(
        ledger.batch_records(storage), load_regions(SETTINGS.config_dir),
        run_batches=["B42", "B43"], released=ledger.released_ids(storage), previous={}, top=5,
        at=at)
    assert cards == expected
    assert [h["batch_id"] for h in cards["JS"]["held_batches"]] == ["B41"]
    assert cards["SH"]["batches"] == 2
