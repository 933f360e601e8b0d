"""The ingest flow and `registry ingest` on a real (ephemeral) Prefect, end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.council_files import FIXTURES
from typer.testing import CliRunner

from registry import ledger
from registry.cli import app
from registry.storage import LocalStorage

pytestmark = pytest.mark.slow


def test_upload_then_ingest_through_the_flow(prefect_home, tmp_path, monkeypatch) -> None:
    root = tmp_path / "registry-data"
    monkeypatch.setenv("REGISTRY_STORAGE_URI", root.as_uri())
    runner = CliRunner()
    # The third file is one `upload` refuses (an unknown column) until the clerk insists.
    refused = runner.invoke(app, ["upload", str(FIXTURES / "merchants_unknown_column.csv"),
                                  "--region", "SH", "--dataset", "merchants"])
    assert refused.exit_code == 2 and "UNKNOWN_COLUMN" in refused.output
    assert not (root / "landing").exists()
    for file, region, dataset, force in [
        ("merchants_sh_gb18030.csv", "SH", "merchants", []),
        ("complaints_zj.xlsx", "ZJ", "complaints", []),
        ("merchants_unknown_column.csv", "SH", "merchants", ["--force"]),
    ]:
        result = runner.invoke(app, ["upload", str(FIXTURES / file), "--region", region,
                                     "--dataset", dataset, *force])
        assert result.exit_code == 0, result.output
        landed, receipt = result.stdout.strip().splitlines()[-2:]
        assert landed == f"landing/{region}/{dataset}/{file}"
        assert receipt.endswith(f"_{Path(file).stem}.json")

    result = runner.invoke(app, ["ingest"])
    assert result.exit_code == 0, result.output
    assert "SH" in result.stdout and "ZJ" in result.stdout

    storage = LocalStorage(root)
    batches = ledger.batch_records(storage)
    assert len(batches) == 2
    (sh,) = [b for b in batches if b.region == "SH"]
    assert (sh.mode, sh.accepted, sh.quarantined) == ("replace", 4, 6)
    receipts = [i.key for i in storage.list("landing/SH/_receipts/") if i.key.endswith(".json")]
    assert len(receipts) == 2

    # a second run finds nothing new
    result = runner.invoke(app, ["ingest", "--region", "SH"])
    assert result.exit_code == 0, result.output
    assert ledger.batch_records(storage) == batches
