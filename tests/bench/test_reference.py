"""The benchmark's reference pipeline checks what the registry's ingest checks: on generated
council files it rejects exactly the planted bad rows, except those whose only fault is the
GB 11714 organisation-code character, which python-stdnum does not check."""

from __future__ import annotations

from datetime import date

import polars as pl

from bench.reference import reference_ingest
from registry.config.contracts import load_contracts
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.demo.samples import SampleSizes, write_sample_uploads

TODAY = date(2026, 6, 30)


def test_the_reference_rejects_the_planted_rows_but_trusts_stdnum(tmp_path):
    settings = Settings(_env_file=None)
    files = write_sample_uploads(
        tmp_path / "in", load_regions(settings.config_dir), load_contracts(settings.schemas_dir),
        SampleSizes(merchants=1200, complaints=2000, inspections=600, gift_evaluations=600),
        seed=11, today=TODAY, formats=("csv", "csv-gb18030", "csv-bom"), parts=1,
    )
    totals = reference_ingest(files, tmp_path / "out", today=TODAY)
    planted = sum(f.rejected for f in files)
    org_code_only = sum(f.defects.get("org_code_check_character", 0) for f in files)
    assert org_code_only > 0
    assert totals["rows"] == sum(f.rows for f in files)
    assert totals["rejected"] == planted - org_code_only
    staged = sum(pl.read_parquet(path).height
                 for path in (tmp_path / "out" / "staged").glob("*.parquet"))
    assert staged == totals["accepted"]
