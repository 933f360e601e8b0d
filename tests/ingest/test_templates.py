"""Templates and the accepted headers come from the contracts, regions and quality gate: a header
the template writes is one the reader maps to its column, a value added to a contract is offered
at once, and `registry columns` prints every alias in full."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from registry.cli import app
from registry.config.contracts import Contract, header_key, load_contracts, load_vocabulary
from registry.config.quality import load_quality_config
from registry.config.regions import load_regions
from registry.config.settings import Settings
from registry.ingest.templates import dataset_template, template_csv, values_text

SETTINGS = Settings(_env_file=None)
CONTRACTS = load_contracts(SETTINGS.schemas_dir)
CONFIG = (load_vocabulary(SETTINGS.schemas_dir), load_regions(SETTINGS.config_dir),
          load_quality_config(SETTINGS.config_dir))
runner = CliRunner()


def _template(dataset: str, region: str | None = None, contracts=CONTRACTS):
    return dataset_template(contracts, *CONFIG, dataset, region)


@pytest.mark.parametrize("dataset", sorted(CONTRACTS))
def test_every_header_a_template_writes_names_its_own_column(dataset: str) -> None:
    index = CONTRACTS[dataset].header_index()
    header = template_csv(_template(dataset)).decode("utf-8-sig").strip().split(",")
    assert [index[header_key(h)] for h in header] == [c.name for c in CONTRACTS[dataset].columns]


def test_required_columns_are_starred_and_a_regions_expected_columns_say_so() -> None:
    sh = {c.spec.name: c for c in _template("merchants", "SH").columns}
    assert sh["filing_id"].header == "*备案编号"
    assert sh["address"].header == "经营地址"
    assert sh["address"].requirement.kind == "expected"
    assert "50%" in sh["address"].requirement.zh and "held" in sh["address"].requirement.en
    js = {c.spec.name: c for c in _template("merchants", "JS").columns}
    assert js["address"].requirement.kind == "optional"
    # With no region, the column is optional but says which region expects it.
    anywhere = {c.spec.name: c for c in _template("merchants").columns}
    assert anywhere["address"].requirement.kind == "optional"
    assert "上海市" in anywhere["address"].requirement.zh


def test_a_region_offers_its_own_cities_and_gives_one_as_the_example() -> None:
    city = next(c for c in _template("merchants", "ZJ").columns if c.spec.name == "city")
    assert city.dropdown[:2] == ("杭州", "宁波") and city.example == "杭州"
    assert "Hangzhou" in values_text(city)


def test_a_value_added_to_a_contract_is_offered_by_the_next_template() -> None:
    raw = CONTRACTS["merchants"].model_dump()
    status = next(c for c in raw["columns"] if c["name"] == "status")
    status["values"]["expired"] = ["已过期", "过期"]
    changed = {"merchants": Contract.model_validate(raw)}
    column = next(c for c in _template("merchants", contracts=changed).columns
                  if c.spec.name == "status")
    assert column.dropdown == ("有效", "暂停", "撤销", "已过期")
    assert "已过期 = expired（也可 also: 过期）" in values_text(column)


def test_an_unknown_dataset_or_region_is_refused_in_both_languages() -> None:
    with pytest.raises(ValueError, match=r"未知的数据集「gifts」.*unknown dataset 'gifts'"):
        _template("gifts")
    with pytest.raises(ValueError, match=r"未知的地区「XX」.*unknown region 'XX'"):
        _template("merchants", "XX")
    for args in (["template", "gifts"], ["columns", "merchants", "--region", "XX"]):
        result = runner.invoke(app, args)
        assert result.exit_code in (2, 64) and "unknown" in result.output, result.output


def test_columns_prints_every_alias_in_full_when_piped() -> None:
    result = runner.invoke(app, ["columns", "complaints"])
    assert result.exit_code == 0, result.output
    for column in CONTRACTS["complaints"].columns:
        assert f"  别名 aliases: {', '.join(column.aliases)}\n" in result.stdout
    assert ("已解决 = resolved（也可 also: 已办结、办结、撤诉、已撤诉、消费者撤诉、撤回投诉、"
            "已撤回、调解成功、已调解、达成调解、和解、已和解、达成和解、结案、已结案）"
            ) in result.stdout
    assert "…" not in result.stdout


def test_columns_wraps_on_a_narrow_terminal_and_crops_nothing() -> None:
    result = runner.invoke(app, ["columns", "inspections", "--region", "AH"],
                           env={"FORCE_COLOR": "1", "COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout and "━" in result.stdout  # a table, folded, not cut


def test_columns_as_json_lists_headers_aliases_and_values() -> None:
    result = runner.invoke(app, ["columns", "merchants", "--region", "SH", "--json"])
    doc = json.loads(result.stdout)
    program = next(c for c in doc["columns"] if c["name"] == "program")
    assert program["header_zh"] == "备案类别" and "programme" in program["aliases"]
    assert program["values"][0] == {"value": "imported_goods",
                                    "accepted": ["进口商品", "进口商品放心消费", "进口"]}
    assert doc["region"] == "SH" and "序号" in doc["ignored_headers"]
