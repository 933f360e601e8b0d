"""Zhejiang sends its full merchant list as a GB18030 CSV exported from an old system (a title
row above the header, Chinese names and addresses, √ and × flags, some 136 KB): every row is
read, none is refused for its encoding, and the receipt says GB18030."""

from __future__ import annotations

import datetime as dt
import json
import re

from typer.testing import CliRunner

from registry.cli import app
from registry.config.contracts import load_contracts
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.demo.samples import SampleSizes, write_sample_uploads
from registry.ingest.pipeline import ingest_pending
from registry.storage import LocalStorage

runner = CliRunner()
# Zhejiang's quarter of 3,000 merchants: a list whose first 64 KiB end inside a character and
# read, to charset-normalizer, as noise.
SEED, MERCHANTS, EXPORTED = 11, 3000, dt.date(2026, 6, 30)


def test_zhejiang_old_system_gb18030_export_is_read_row_for_row(tmp_path) -> None:
    settings = Settings(_env_file=None)
    files = write_sample_uploads(
        tmp_path / "export", load_regions(settings.config_dir),
        load_contracts(settings.schemas_dir), SampleSizes(MERCHANTS, 0, 0, 0), seed=SEED,
        today=EXPORTED, formats=("csv-gb18030",), parts=1,
    )
    export = next(f for f in files if f.region == "ZJ")
    file = export.path.rename(tmp_path / "浙江省经营者备案名单.csv")
    root = tmp_path / "root"
    env = {"REGISTRY_STORAGE_URI": f"file://{root}", "PREFECT_API_URL": ""}

    checked = runner.invoke(app, ["check", str(file), "--region", "ZJ", "--dataset",
                                  "merchants", "--json"])
    assert checked.exit_code in (0, 1), checked.output  # 1: some rows have errors
    doc = json.loads(checked.stdout)
    assert doc["file_errors"] == []

    uploaded = runner.invoke(app, ["upload", str(file), "--region", "ZJ", "--dataset",
                                   "merchants"], env=env)
    assert uploaded.exit_code == 0, uploaded.output
    receipt_key = re.search(r"landing/ZJ/_receipts/\S+\.json", uploaded.stdout).group()

    storage = LocalStorage(root)
    ingest_pending(storage, Settings(_env_file=None, storage_uri=f"file://{root}"))
    receipt = json.loads(storage.read_bytes(receipt_key))
    assert receipt["file_errors"] == []
    assert "ENCODING_UNDECODABLE" not in json.dumps(receipt)
    assert (receipt["format"], receipt["encoding"]) == ("csv", "gb18030")
    assert receipt["rows"] == export.rows == 750
    assert (receipt["accepted"], receipt["rejected"]) == (
        export.rows - export.rejected, export.rejected)
