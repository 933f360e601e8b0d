"""The sample-data generator against the real ingest path: every file is read and validated as
a council upload, and exactly the rows the generator made bad are rejected, for the codes it
meant. USCCs are checked against python-stdnum as well as the registry's own check."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fixtures.council_files import check_bytes
from opencc import OpenCC
from stdnum.cn import uscc as stdnum_uscc

from registry.config.contracts import load_contracts
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.demo.samples import DEFECTS, FORMATS, SampleSizes, _World, write_sample_uploads
from registry.ingest.uscc import uscc_is_valid
from registry.storage.layout import DATASETS

TODAY = date(2026, 11, 30)
SIZES = SampleSizes(merchants=2400, complaints=4000, inspections=1200, gift_evaluations=1200)
SETTINGS = Settings(_env_file=None)
REGIONS = load_regions(SETTINGS.config_dir)
CONTRACTS = load_contracts(SETTINGS.schemas_dir)


def _generate(folder: Path, **kwargs):
    return write_sample_uploads(folder, REGIONS, CONTRACTS, SIZES, seed=7, today=TODAY,
                                **kwargs)


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """Every generated file, with what the ingest's validation made of it."""
    files = _generate(tmp_path_factory.mktemp("samples"))
    return [(f, check_bytes(f.path.read_bytes(), f.dataset, f.region, file=f.path.name,
                            today=TODAY)) for f in files]


def _accepted(checked, dataset: str) -> pl.DataFrame:
    return pl.concat([c.accepted for f, c in checked if f.dataset == dataset])


def test_every_region_uploads_every_dataset_in_every_format(checked):
    assert {(f.region, f.dataset) for f, _ in checked} == {
        (r, d) for r in REGIONS.regions for d in DATASETS}
    assert {f.format for f, _ in checked} == set(FORMATS)
    for dataset in DATASETS:
        assert sum(f.rows for f, _ in checked if f.dataset == dataset) == SIZES.of(dataset)
    # SH files its merchants in replace mode: one complete list, never split.
    assert [f.rows for f, _ in checked if (f.region, f.dataset) == ("SH", "merchants")] == [600]


def test_exactly_the_planted_rows_are_rejected_with_the_planted_codes(checked):
    for sample, check in checked:
        assert check.file_error is None, (sample.path.name, check.file_error)
        assert check.rows_in == sample.rows, sample.path.name
        assert check.rejected == sample.rejected, (sample.path.name, check.errors)
        codes = set(check.errors.get_column("code").to_list()) if check.rejected else set()
        assert codes == {DEFECTS[sample.dataset][kind] for kind in sample.defects}, (
            sample.path.name)
    rows = sum(f.rows for f, _ in checked)
    rejected = sum(c.rejected for _, c in checked)
    assert 0.025 < rejected / rows < 0.045
    # Many kinds of bad row, and each kind somewhere.
    planted = Counter(k for f, _ in checked for k in f.defects)
    assert set(planted) == {k for kinds in DEFECTS.values() for k in kinds}


def test_usccs_pass_python_stdnum_and_our_check_and_defects_fail_as_meant():
    world = _World(7, TODAY, list(REGIONS.regions.values()), 100_000)
    m = np.arange(0, 100_000, 7)
    good = world.usccs(m)
    assert good.n_unique() == len(m)
    assert all(stdnum_uscc.is_valid(code) for code in good.to_list())
    ours = pl.select(uscc_is_valid(pl.lit(good))).to_series()
    assert ours.all()
    # A wrong organisation-code character slips past python-stdnum, never past ours.
    wrong_org = world.usccs(m, wrong_org=np.ones(len(m), dtype=bool))
    assert all(stdnum_uscc.is_valid(code) for code in wrong_org.to_list())
    assert not pl.select(uscc_is_valid(pl.lit(wrong_org))).to_series().any()
    wrong_mod31 = world.usccs(m, wrong_mod31=np.ones(len(m), dtype=bool))
    assert not any(stdnum_uscc.is_valid(code) for code in wrong_mod31.to_list())
    # Registered mostly where the merchant files, some in another province of the alliance.
    home = np.array([REGIONS.regions[c].division_code for c in REGIONS.regions])[
        world.region_of(m)]
    same = (good.str.slice(2, 2).to_numpy() == home).mean()
    assert 0.94 < same < 0.995


def test_the_data_looks_like_the_councils_data(checked):
    merchants = _accepted(checked, "merchants")
    t2s = OpenCC("t2s")
    names = merchants.get_column("merchant_name").to_list()
    assert sum(t2s.convert(n) != n for n in names) > 0.02 * len(names)  # some Traditional
    per_uscc = merchants.group_by("uscc").agg(
        pl.col("region").n_unique().alias("regions"),
        pl.col("merchant_name").n_unique().alias("names"),
        pl.col("status").alias("statuses"),
    )
    cross = per_uscc.filter(pl.col("regions") > 1)
    assert cross.height > 0.02 * per_uscc.height
    assert cross.filter(pl.col("names") > 1).height > 0.5 * cross.height  # name variants
    # A merchant revoked in one region and filed (active) in another.
    assert cross.filter(pl.col("statuses").list.contains("revoked")
                        & pl.col("statuses").list.contains("active")).height > 0
    assert set(merchants.get_column("status")) == {"active", "suspended", "revoked"}

    complaints = _accepted(checked, "complaints")
    counts = complaints.group_by("uscc").len().sort("len", descending=True)
    top = counts.head(max(1, counts.height // 100)).get_column("len").sum()
    assert top > 0.1 * complaints.height  # many complaints for a few merchants

    inspections = _accepted(checked, "inspections")
    pass_rate = (inspections.get_column("result") == "pass").mean()
    assert 0.85 < pass_rate < 0.95
    assert (inspections.get_column("severity") == "serious").sum() > 0

    gifts = _accepted(checked, "gift_evaluations")
    evaluators = gifts.group_by("region", "product_id", "evaluation_round").len()
    # The last product of a file may be cut short; the rest have 3 to 9 evaluators.
    assert evaluators.get_column("len").max() <= 9
    assert (evaluators.get_column("len") >= 3).mean() > 0.95


def test_same_arguments_same_bytes_whatever_the_chunk_size(tmp_path):
    first = _generate(tmp_path / "a", formats=("csv", "csv-gb18030", "xlsx"))
    again = _generate(tmp_path / "b", formats=("csv", "csv-gb18030", "xlsx"), chunk_rows=97)
    assert [f.path.name for f in first] == [f.path.name for f in again]
    for a, b in zip(first, again, strict=True):
        assert a.path.read_bytes() == b.path.read_bytes(), a.path.name
        assert (a.rejected, a.defects) == (b.rejected, b.defects)
    other_seed = write_sample_uploads(tmp_path / "c", REGIONS, CONTRACTS, SIZES, seed=8,
                                      today=TODAY, formats=("csv",))
    assert other_seed[0].path.read_bytes() != first[0].path.read_bytes()


def test_unknown_formats_are_refused(tmp_path):
    with pytest.raises(ValueError, match="formats"):
        _generate(tmp_path, formats=("csv", "ods"))
