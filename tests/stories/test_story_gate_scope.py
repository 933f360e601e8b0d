"""Stories of the batch gate's scope (docs/architecture.md, What a batch gate may hold):
whole-list plausibility checks judge complete (replace-mode) lists only, so a council's short
upsert upload of bad news is published; a complete list that cannot be true is still held; and
a held batch is shown where ingest results are shown."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from council_world import (
    AS_OF,
    CouncilWorld,
    complaint,
    csv_bytes,
    filing,
    inspection,
    merchant_code,
)
from typer.testing import CliRunner

from registry.build.scores import DISQUALIFIER_SERIOUS_FAILURE, status_disqualifier
from registry.cli import app
from registry.ingest.pipeline import UploadResult
from registry.storage import LocalStorage


def _sh_list(n: int, *, suspended: int = 0, start: int = 1) -> list[dict[str, str]]:
    """Shanghai's complete list of ``n`` filings, the first ``suspended`` of them suspended."""
    return [filing("SH", f"SH-{i}", merchant_code("SH", i), District="静安区",
                   Address=f"南京西路{i}号",
                   Status="suspended" if i - start < suspended else "active")
            for i in range(start, start + n)]


def test_a_one_row_revocation_from_jiangsu_is_published(tmp_path) -> None:
    """Jiangsu files merchant X, which Shanghai also lists, and X is published as trusted. Then
    Jiangsu uploads a one-row file (upsert) revoking X's filing: consumers must see X is no
    longer trusted, for a revocation reported by any region."""
    w = CouncilWorld(tmp_path)
    x = merchant_code("JS", 1)
    w.upload("SH", "merchants", [
        filing("SH", "SH-X", x, District="静安区", Address="南京西路100号"), *_sh_list(3)])
    w.upload("JS", "merchants", [filing("JS", "JS-1", x),
                                 filing("JS", "JS-2", merchant_code("JS", 2))])
    w.ingest()
    w.publish()
    assert w.merchant(x)["trusted"] is True

    w.upload("JS", "merchants", [filing("JS", "JS-1", x, Status="revoked")])
    (result,) = w.ingest().values()
    w.publish()

    published = w.merchant(x)
    assert status_disqualifier("revoked") in published["disqualifications"]
    assert published["trusted"] is False
    assert not result.held


def test_a_one_row_serious_inspection_failure_from_anhui_is_published(tmp_path) -> None:
    """Anhui lists merchant X, which is published as trusted. Its market-supervision lab then
    uploads a single inspection (upsert): X's milk powder failed, seriously. Consumers must
    see X disqualified for the serious failure."""
    w = CouncilWorld(tmp_path)
    x = merchant_code("AH", 1)
    w.upload("AH", "merchants", [filing("AH", "AH-1", x)])
    w.ingest()
    w.publish()
    assert w.merchant(x)["trusted"] is True

    w.upload("AH", "inspections", [inspection("AH-T-1", x, 检测结论="fail", 严重程度="严重")])
    (result,) = w.ingest().values()
    w.publish()

    published = w.merchant(x)
    assert DISQUALIFIER_SERIOUS_FAILURE in published["disqualifications"]
    assert published["trusted"] is False
    assert published["failed_inspections_12m"] == 1
    assert not result.held


def test_complaints_none_of_them_resolved_yet_are_counted(tmp_path) -> None:
    """Zhejiang uploads this month's complaints against merchant X; the council is still
    handling every one, so the optional "resolved on" column is empty throughout. The receipt
    must not say the batch is held, and X's complaints must count in the registry."""
    w = CouncilWorld(tmp_path)
    x = merchant_code("ZJ", 1)
    w.upload("ZJ", "merchants", [filing("ZJ", "ZJ-1", x)])
    w.upload("ZJ", "complaints", [complaint("ZJ-C-1", x), complaint("ZJ-C-2", x),
                                  complaint("ZJ-C-3", x, Status="unresolved")])
    results = w.ingest()
    w.publish()

    published = w.merchant(x)
    assert (published["complaints_12m"], published["unresolved_12m"]) == (3, 3)
    complaints = next(r for r in results.values() if r.dataset == "complaints")
    assert w.receipt(complaints)["batch_status"] == "released"


def test_a_mostly_suspended_complete_list_from_shanghai_is_still_held(tmp_path) -> None:
    """Shanghai sends its complete list (replace mode) of four active filings, published as
    trusted. Its next complete list, as long, has three of the four suspended: the wrong export,
    not news. It is held for that reason alone, and the previous list stays published."""
    w = CouncilWorld(tmp_path)
    w.upload("SH", "merchants", _sh_list(4))
    w.ingest()
    w.publish()

    w.upload("SH", "merchants", _sh_list(4, suspended=3))
    (result,) = w.ingest().values()
    w.publish()

    assert result.held
    receipt = w.receipt(result)
    assert [r["code"] for r in receipt["held_reasons"]] == ["batch_implausible_distribution"]
    assert "25% of filings are active" in receipt["held_reasons"][0]["message_en"]
    merchants = w.merchants()
    assert all(merchants[merchant_code("SH", i)]["trusted"] for i in range(1, 5))


def _table_rows(output: str, first_cell: str) -> dict[str, str]:
    """The row of a printed table whose first cell is ``first_cell``, by column heading."""
    rows = [[cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
            for line in output.splitlines() if line.startswith(("│", "┃"))]
    header = next(r for r in rows if r[:1] == ["region"])
    row = next(r for r in rows if r[:1] == [first_cell])
    return dict(zip(header, row, strict=True))


def test_registry_ingest_and_run_show_the_held_batch_and_why(prefect_home, tmp_path,
                                                             monkeypatch) -> None:
    """Shanghai sends a complete list that is mostly suspended, and a data engineer runs
    `registry ingest`, later `registry run`. Both must count the batch as held, not as staged,
    and say why, so that nobody takes it for published."""
    root = tmp_path / "registry"
    monkeypatch.setenv("REGISTRY_STORAGE_URI", root.as_uri())
    w = CouncilWorld(tmp_path, storage=LocalStorage(root))
    w.upload("SH", "merchants", _sh_list(4, suspended=3))

    ingested = CliRunner().invoke(app, ["ingest"])

    assert ingested.exit_code == 0, ingested.output
    sh = _table_rows(ingested.stdout, "SH")
    assert (sh.get("uploads"), sh.get("staged"), sh.get("held")) == ("1", "0", "1")
    assert "batch_implausible_distribution" in ingested.stdout

    w.upload("JS", "merchants", [filing("JS", "JS-1", merchant_code("JS", 1))])
    ran = CliRunner().invoke(app, ["run", "--as-of", AS_OF.isoformat()])

    assert ran.exit_code == 0, ran.output
    assert _table_rows(ran.stdout, "JS")["staged"] == "1"
    assert "1 held batch(es)" in ran.stdout
    assert "batch_implausible_distribution" in ran.stdout
    assert "published snapshot" in ran.stdout


def test_a_short_list_landing_in_the_same_second_as_the_full_one_is_still_held(tmp_path):
    """Shanghai's export job writes its complete list of 20 filings and, in the same second, a
    truncated re-export of 10 (the job was killed half-way and retried). Both are ingested in
    one run. The short list must be held against the full one whatever their ids' hash parts,
    which alone order two uploads of one second, and the 20 merchants stay listed."""
    world = CouncilWorld(tmp_path)
    second = datetime(2025, 3, 1, 1, 0, 0, tzinfo=UTC)
    full = _sh_list(20)
    # Trailing blank lines change only the bytes: pick a truncated export whose id sorts before
    # the full list's, the order in which a comparison of ids alone misses the full list.
    full_id = hashlib.sha256(csv_bytes(full)).hexdigest()[:12]
    short = next(data for n in range(64)
                 if hashlib.sha256(data := csv_bytes(full[:10]) + b"\n" * n).hexdigest()[:12]
                 < full_id)
    full_key = world.upload("SH", "merchants", full, name="a-full.csv", at=second)
    short_key = world.upload("SH", "merchants", short, name="b-retry.csv", at=second)
    results = world.ingest([full_key, short_key])

    assert results[short_key].batch_id < results[full_key].batch_id
    assert results[full_key].held is False
    assert results[short_key].held is True
    assert "batch_rows_below_previous" in world.receipt(results[short_key])["held_reasons"][0][
        "code"]
    world.publish()
    assert len(world.merchants()) == 20


def _sh_one_row_revocation(w: CouncilWorld) -> tuple[str, UploadResult]:
    """Shanghai's complete list of six is published, then its clerk sends one row revoking
    SH-2 (merchant X), which the gate holds as a complete list of one. X's code and that
    upload's result."""
    w.upload("SH", "merchants", _sh_list(6))
    w.ingest()
    w.publish()
    x = merchant_code("SH", 2)
    (one_row,) = w.ingest([w.upload("SH", "merchants", [
        filing("SH", "SH-2", x, District="静安区", Address="南京西路2号", Status="revoked")])
    ]).values()
    assert one_row.held
    return x, one_row


def test_a_one_row_revocation_from_shanghai_says_how_to_revoke_in_a_complete_list(tmp_path):
    """Shanghai's clerk revokes merchant X the way Jiangsu does: a file of one row. Shanghai
    sends its merchants as complete lists, so the file reads as a list of one, and the gate
    holds it (releasing it would withdraw every other Shanghai filing). X stays as it was; the
    receipt must tell the clerk, in both languages, how to revoke in a complete list, and that
    a release would withdraw the filings the file leaves out. She follows it: the complete list
    with X revoked, and X is no longer trusted while the others stay listed."""
    w = CouncilWorld(tmp_path)
    x, one_row = _sh_one_row_revocation(w)
    reasons = {r["code"]: r for r in w.receipt(one_row)["held_reasons"]}
    reason = reasons["batch_rows_below_previous"]
    assert "完整名单" in reason["message_zh"] and "状态" in reason["message_zh"]
    assert "撤下" in reason["message_zh"]
    assert "whole list" in reason["message_en"] and "status" in reason["message_en"]
    assert "withdrawn" in reason["message_en"]
    w.publish()
    assert len(w.merchants()) == 6

    rows = _sh_list(6)
    rows[1]["Status"] = "revoked"
    (complete,) = w.ingest([w.upload("SH", "merchants", rows)]).values()
    assert not complete.held
    w.publish()
    assert x not in w.merchants() or w.merchant(x)["trusted"] is False
    assert all(w.merchant(merchant_code("SH", i))["trusted"] for i in (1, 3, 4, 5, 6))


def test_releasing_a_one_row_complete_list_must_name_what_it_withdraws(tmp_path, monkeypatch):
    """Shanghai's one-row revocation of X is held as a complete list of one. A data engineer,
    asked by the clerk, runs `registry batches release` on it. Releasing it would withdraw the
    five other Shanghai filings, so the release is refused until the engineer confirms that
    number (`--withdraws 5`), and the refusal names them. Meanwhile a consumer app still reads
    all six merchants; once confirmed, the next snapshot withdraws the five."""
    w = CouncilWorld(tmp_path)
    monkeypatch.setenv("REGISTRY_STORAGE_URI", f"file://{tmp_path / 'registry'}")
    x, one_row = _sh_one_row_revocation(w)
    runner = CliRunner()
    release = ["batches", "release", one_row.batch_id, "--reason", "clerk asked", "--by", "li"]

    refused = runner.invoke(app, release)
    assert refused.exit_code == 1
    assert "withdraws 5" in refused.output and "SH-1" in refused.output
    assert "--withdraws 5" in refused.output
    assert runner.invoke(app, [*release, "--withdraws", "4"]).exit_code == 1
    w.publish()
    assert len(w.merchants()) == 6

    confirmed = runner.invoke(app, [*release, "--withdraws", "5"])
    assert confirmed.exit_code == 0, confirmed.output
    w.publish()
    assert x not in w.merchants() or w.merchant(x)["trusted"] is False
    assert all(merchant_code("SH", i) not in w.merchants() for i in (1, 3, 4, 5, 6))


def test_a_complete_list_with_typos_in_some_rows_is_not_held_as_truncated(tmp_path):
    """Shanghai's complete list of ten is published. November's list of the same ten revokes X
    and has typos in three other rows: two credit codes mistyped, one date impossible. Those
    rows are refused, and each keeps its filing's previous row: the list leaves nothing out, so
    it is not a truncated export, and holding it kept X trusted. It is published: X is not
    trusted, the three filings keep their previous rows, and the receipt says which."""
    w = CouncilWorld(tmp_path)
    october = _sh_list(10)
    w.upload("SH", "merchants", october)
    w.ingest()
    w.publish()
    x = merchant_code("SH", 1)
    assert w.merchant(x)["verdict"] == "trusted"

    november = [{**october[0], "Status": "revoked"},
                {**october[1], "USCC": october[1]["USCC"][:-1] + "0"},
                {**october[2], "USCC": october[2]["USCC"][1:]},
                {**october[3], "Valid Until": "2027-13-01"},
                *october[4:]]
    key = w.upload("SH", "merchants", november)
    result = w.ingest()[key]
    receipt = w.receipt(result)
    assert (receipt["accepted"], receipt["rejected"]) == (7, 3)
    assert not result.held, receipt["held_reasons"]
    assert receipt["kept_previous"] == ["SH-2", "SH-3", "SH-4"]
    w.publish()
    row = w.merchant(x)
    assert row is None or row["trusted"] is False
    assert [w.merchant(merchant_code("SH", i))["verdict"] for i in range(2, 11)] == [
        "trusted"] * 9


def test_a_complete_list_missing_filings_and_with_typos_is_still_held(tmp_path):
    """Guard: the rows a list leaves out still count against it. Shanghai's next list of the
    same ten has three filings left out and one row refused: seven rows name a filing, below
    80% of ten, and it is held; the ten stay listed."""
    w = CouncilWorld(tmp_path)
    october = _sh_list(10)
    w.upload("SH", "merchants", october)
    w.ingest()
    w.publish()

    november = [{**october[0], "Valid Until": "2027-13-01"}, *october[4:]]
    key = w.upload("SH", "merchants", november)
    result = w.ingest()[key]
    assert result.held
    receipt = w.receipt(result)
    assert [r["code"] for r in receipt["held_reasons"]] == ["batch_rows_below_previous"]
    (reason,) = receipt["held_reasons"]
    assert "另有 1 行被拒但保留原备案，计入名单共 7 行" in reason["message_zh"]
    assert "6 accepted rows, outside the allowed 8-20" in reason["message_en"]
    w.publish()
    assert [w.merchant(merchant_code("SH", i))["verdict"] for i in range(1, 11)] == [
        "trusted"] * 10
