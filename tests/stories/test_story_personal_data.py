"""Stories of personal data sent where it does not belong (docs/architecture.md, Personal
data): it is stopped at the row that carries it, never kept in plain by the pipeline, and a refused
publication is reported to the operator, not thrown at them."""

from __future__ import annotations

import json
import shutil

import pytest
from council_world import AS_OF, CouncilWorld, complaint, filing, inspection, merchant_code
from typer.testing import CliRunner

from registry.cli import app
from registry.config.settings import PROJECT_ROOT

PHONE = "13912345678"
CONSUMER = "王小明"
CONSUMER_PHONE = "13800001111"


def sh_list(*overrides: dict[str, str]) -> list[dict[str, str]]:
    """Shanghai's complete list of four active filings (its template carries district and
    address, which its batch gate expects), with row ``i`` changed by ``overrides[i]``."""
    rows = [filing("SH", f"SH-{n}", merchant_code("SH", n), District="黄浦区",
                   Address=f"南京东路{n}号") for n in range(1, 5)]
    for row, changes in zip(rows, overrides, strict=False):
        row.update(changes)
    return rows


def upload_the_other_regions(w: CouncilWorld) -> None:
    for region in ("JS", "ZJ", "AH"):
        w.upload(region, "merchants",
                 [filing(region, f"{region}-{n}", merchant_code(region, n)) for n in (1, 2)])


def stored_text(w: CouncilWorld, prefix: str) -> str:
    """Every value of every Parquet file under ``prefix``, as one text."""
    keys = [i.key for i in w.storage.list(prefix) if i.key.endswith(".parquet")]
    assert keys, f"nothing under {prefix}"
    frames = [w.storage.read_parquet(key) for key in keys]
    return "\n".join(str(value) for frame in frames for column in frame.columns
                     for value in frame.get_column(column).to_list())


def test_a_mobile_number_in_a_merchant_name_is_quarantined_and_the_snapshot_is_published(
    tmp_path,
):
    """Shanghai's clerk types the owner's mobile number into one merchant's name. That row
    comes back on the receipt as PII_IN_TEXT, with the number masked, and the other three
    Shanghai filings and every other council's merchants are published as usual."""
    w = CouncilWorld(tmp_path)
    sh = w.upload("SH", "merchants", sh_list({"Merchant Name": f"张三 {PHONE} 商行"}))
    upload_the_other_regions(w)
    results = w.ingest()

    receipt = w.receipt(results[sh])
    assert [(e["row"], e["column"], e["code"]) for e in receipt["row_errors"]] == [
        (2, "merchant_name", "PII_IN_TEXT")]
    assert receipt["row_errors"][0]["value"] == "张三 139****5678 商行"
    assert "个人信息不得填写在此列" in receipt["row_errors"][0]["message_zh"]
    assert "Personal data must not be written" in receipt["row_errors"][0]["message_en"]
    assert PHONE not in json.dumps(receipt, ensure_ascii=False)
    assert PHONE not in stored_text(w, "quarantine/")

    w.publish()
    listed = w.merchants()
    assert merchant_code("SH", 1) not in listed
    assert {merchant_code("SH", n) for n in (2, 3, 4)} <= set(listed)
    assert {row["registered_region"] for row in listed.values()} == {"SH", "JS", "ZJ", "AH"}


def test_a_complaint_with_the_consumers_name_and_phone_is_not_kept_in_plain(tmp_path):
    """Zhejiang's complaints export carries the consumer's name and phone in the template's
    optional columns, on a good row and on a row with a broken credit code. The complaint
    still counts against the merchant in the snapshot, but neither the staged nor the
    quarantined rows hold the consumer's name or phone."""
    w = CouncilWorld(tmp_path)
    code = merchant_code("ZJ", 1)
    w.upload("ZJ", "merchants", [filing("ZJ", f"ZJ-{n}", merchant_code("ZJ", n))
                                 for n in (1, 2)])
    personal = {"Consumer Name": CONSUMER, "Consumer Phone": CONSUMER_PHONE}
    complaints = w.upload("ZJ", "complaints", [
        complaint("TS-1", code, **personal),
        complaint("TS-2", code, Status="resolved", **{"Resolved On": "2026-06-10"}),
        complaint("TS-3", "913300000000000000", **personal),
    ])
    results = w.ingest()
    assert (results[complaints].accepted, results[complaints].quarantined) == (2, 1)

    for prefix in ("staged/complaints/", "quarantine/complaints/"):
        kept = stored_text(w, prefix)
        assert CONSUMER not in kept and CONSUMER_PHONE not in kept, prefix
    receipt = json.dumps(w.receipt(results[complaints]), ensure_ascii=False)
    assert CONSUMER not in receipt and CONSUMER_PHONE not in receipt

    w.publish()
    counted = w.merchant(code)
    assert (counted["complaints_12m"], counted["unresolved_12m"]) == (2, 1)


@pytest.mark.slow
def test_registry_run_reports_a_refused_publication_without_a_traceback(
    tmp_path, monkeypatch, prefect_home
):
    """The operator deploys a registry suite no registry can pass (every score must exceed
    the sum of its parts by five points) and runs `registry run` after the councils' uploads.
    The uploads are ingested, publication is refused, and the command says so and why and
    exits 1, as `registry publish` does."""
    expectations = tmp_path / "expectations"
    shutil.copytree(PROJECT_ROOT / "expectations", expectations)
    suite_path = expectations / "registry_merchants.json"
    suite = json.loads(suite_path.read_text(encoding="utf-8"))
    [score_sum] = [e for e in suite["expectations"]
                   if e["meta"]["code"] == "registry_score_not_sum"]
    score_sum["kwargs"].update(min_value=5, max_value=6)
    suite_path.write_text(json.dumps(suite, ensure_ascii=False), encoding="utf-8")

    w = CouncilWorld(tmp_path)
    w.upload("SH", "merchants", sh_list())
    w.upload("AH", "inspections", [inspection("I-1", merchant_code("SH", 1))])
    monkeypatch.setenv("REGISTRY_STORAGE_URI", w.storage.root_uri)
    monkeypatch.setenv("REGISTRY_EXPECTATIONS_DIR", str(expectations))
    monkeypatch.setenv("REGISTRY_READ_IN_WORKER", "false")
    monkeypatch.setenv("CI", "true")

    result = CliRunner().invoke(app, ["run", "--as-of", AS_OF.isoformat()])

    # Exit 1 by the command itself, not an exception escaping it (a traceback on the terminal).
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1
    assert ("publication refused: refusing to publish a registry that fails its quality suite: "
            "[registry_score_not_sum]") in result.output
    assert w.pending() == []  # the uploads were ingested all the same
