"""Every patch of another library's internals checks the installed version against the range it
was written for: the installed versions pass, and any other version is refused loudly."""

from __future__ import annotations

import re
from datetime import date

import polars as pl
import pytest

from registry._compat import gx, opencc, prefect, versions
from registry._compat.versions import IncompatibleVersion, SupportedVersions
from registry.config.contracts import load_contracts
from registry.config.quality import load_quality_config
from registry.config.settings import Settings
from registry.quality import runner
from registry.quality.suites import (
    Suite,
    gate_frame,
    load_suite,
    row_count_bounds,
    staged_suite_parameters,
    suite_in_scope,
)

PATCHED = [gx.SUPPORTED, opencc.SUPPORTED, prefect.SUPPORTED]


@pytest.mark.parametrize("supported", PATCHED, ids=lambda s: s.library)
def test_the_installed_versions_are_the_ones_the_patches_were_written_for(
        supported: SupportedVersions) -> None:
    assert supported.check() == versions.installed_version(supported.library)


@pytest.mark.parametrize("supported", PATCHED, ids=lambda s: s.library)
@pytest.mark.parametrize("fake", ["0.9.0", "2.0.0"])
def test_a_version_outside_the_range_is_refused_naming_library_version_and_range(
        supported: SupportedVersions, fake: str) -> None:
    with pytest.raises(IncompatibleVersion) as refused:
        supported.check(fake)
    message = str(refused.value)
    assert supported.library in message and fake in message and str(supported) in message
    assert supported.patches in message


def test_the_range_includes_its_lower_bound_and_excludes_its_upper_bound() -> None:
    supported = SupportedVersions("somelib", "1.24", "1.25", patches="registry._compat.x")
    assert str(supported) == ">=1.24,<1.25"
    for inside in ("1.24", "1.24.0", "1.24.1", "1.24.1rc2", "1.24.99"):
        assert supported.check(inside) == inside
    for outside in ("1.23.9", "1.25", "1.25.0", "1.25.0rc1", "2"):
        with pytest.raises(IncompatibleVersion):
            supported.check(outside)


def test_each_patch_checks_the_version_when_it_is_applied(monkeypatch) -> None:
    monkeypatch.setattr(versions, "installed_version", lambda library: "99.0")
    with pytest.raises(IncompatibleVersion, match=r"great-expectations 99\.0 "):
        gx._patched.__wrapped__()
    with pytest.raises(IncompatibleVersion, match=r"great-expectations 99\.0 "):
        gx.release_batch_data(None)
    with pytest.raises(IncompatibleVersion, match=r"opencc 99\.0 "):
        opencc.c_converter("t2s.json")
    with pytest.raises(IncompatibleVersion, match=r"opencc 99\.0 "):
        opencc.dictionary_values("TSCharacters.ocd2")


def test_each_kwargs_lookup_builds_the_configuration_once_and_answers_as_gx_does(
        monkeypatch) -> None:
    """Every expectation of every reviewed suite: the patched kwargs helpers return what Great
    Expectations' own return, and one call builds the expectation's configuration once."""
    import json

    from registry.config.settings import Settings

    gx_module = gx.patched()
    from great_expectations.expectations.expectation import Expectation

    built = []  # a configuration is built from the expectation's dict()
    as_dict = Expectation.dict
    monkeypatch.setattr(Expectation, "dict",
                        lambda e, *a, **k: built.append(e) or as_dict(e, *a, **k))
    for path in sorted(Settings(_env_file=None).expectations_dir.glob("*.json")):
        suite = gx_module.ExpectationSuite(**json.loads(path.read_bytes()))
        for expectation in suite.expectations:
            for name in gx._KWARGS_HELPERS:
                helper = getattr(Expectation, name)
                args = ("result_format",) if name == "_get_success_kwarg" else ()
                built.clear()
                patched_answer = helper(expectation, *args)
                assert len(built) == 1, (path.name, type(expectation).__name__, name)
                assert patched_answer == helper.__wrapped__(expectation, *args)


def test_each_patch_checks_the_version_when_it_is_used(monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(versions, "installed_version", lambda library: "99.0")
    with pytest.raises(IncompatibleVersion, match=r"great-expectations 99\.0 "):
        gx.build_site(None, tmp_path, [])
    with pytest.raises(IncompatibleVersion, match=r"great-expectations 99\.0 "):
        gx.static_folder()
    with pytest.raises(IncompatibleVersion, match=r"prefect 99\.0 "):
        prefect.temporary_server_command(4200)


# The gate's staged suites on small frames, as ingestion runs them, and what varies from one
# build of a page to the next: element ids (uuid4) and the logo's cache-busting run time.
_PER_BUILD = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
                        r"|\?d=\d{8}T\d{6}\.\d{6}Z")


def _staged_runs() -> list[tuple[str, pl.DataFrame, Suite, dict]]:
    """(dataset, frame, suite in scope, parameters): a clean merchants batch, one with a key
    repeated, a complaints batch that nothing resolved yet (its empty resolved_on fails the
    date window, which the gate would leave out), and the clean merchants batch again."""
    from staged_rows import complaint, merchant, staged_frame

    settings = Settings(_env_file=None)
    config = load_quality_config(settings.config_dir)
    contracts = load_contracts(settings.schemas_dir)
    merchants = staged_frame("merchants", [merchant(filing_id=f"F{i}") for i in range(5)]
                             ).with_columns(pl.lit("静安区").alias("district"),
                                            pl.lit("路").alias("address"))
    repeated = pl.concat([merchants, merchants.head(1)])
    complaints = staged_frame("complaints", [complaint(complaint_id=f"C{i}") for i in range(4)])
    runs = []
    for dataset, frame in (("merchants", merchants), ("merchants", repeated),
                           ("complaints", complaints), ("merchants", merchants)):
        suite, _ = suite_in_scope(
            load_suite(settings.expectations_dir, config.suites.staged[dataset]), mode="upsert",
            empty_optional=())
        params = staged_suite_parameters(
            config, region="SH", dataset=dataset, today=date(2026, 11, 30),
            bounds=row_count_bounds(config, dataset, "upsert", None))
        runs.append((dataset, gate_frame(frame, contracts[dataset]), suite, params))
    return runs


def _answers(validation) -> list[tuple]:
    return [(r.expectation_config.type, r.expectation_config.kwargs.get("column"), r.success,
             r.result.get("observed_value"), r.result.get("unexpected_count"),
             r.result.get("partial_unexpected_list"))
            for r in validation.results]


def test_a_run_in_the_process_s_one_context_gets_the_answers_of_a_context_of_its_own() -> None:
    """The gate validates every run with one data context per process (registry.quality.runner),
    whose execution engines outlive a run: each run answers, expectation by expectation, what
    a fresh context answers for the same frame, suite and parameters, as the gate did when
    each run made its own."""
    gx_module = gx.patched()
    pending = runner.PendingDataDocs()
    fresh = []
    for n, (_, frame, suite, params) in enumerate(_staged_runs()):
        runner.suite_result(frame, suite, params, data_docs=pending.at(f"{n}/"))
        context = gx_module.get_context(mode="ephemeral")
        source = context.data_sources.add_pandas(suite.name)
        definition = source.add_dataframe_asset(suite.name).add_batch_definition_whole_dataframe(
            "batch")
        data = frame.select(suite.columns()).to_pandas(use_pyarrow_extension_array=True)
        fresh.append(definition.get_batch(batch_parameters={"dataframe": data}).validate(
            gx_module.ExpectationSuite(**suite.document),
            result_format={"result_format": "BASIC"}, expectation_parameters=dict(params)))
    kept = [run.validation for run in pending.runs().values()]
    assert [v.success for v in kept] == [True, False, False, True]
    assert [_answers(v) for v in kept] == [_answers(v) for v in fresh]


# Rows that fail the registry suite's expectations, most of them under a row condition.
_INCONSISTENT = [
    {}, {"score": 95.0}, {"grade": "B"}, {"score_quality": 5.0, "score": 75.0},
    {"disqualifications": ["revoked"]},
    {"disqualifications": ["revoked"], "trusted": False, "verdict": "disqualified"},
    {"disqualifications": ["revoked"], "grade": None, "trusted": False},
    {"verdict": "listed"}, {"verdict": "approved"}, {"trusted": False},
    {"score_quality": 0.0, "score_complaints": 25.0, "score": 65.0, "grade": "C",
     "trusted": False},
    {"score_quality": 0.0, "score_complaints": 0.0, "score": 40.0, "grade": None,
     "trusted": False, "verdict": "listed"},
    {"score": None, "grade": None, "trusted": False, "verdict": "listed"},
    {"name_variants": ["上海进口商品有限公司", "联系 13912345678"]},
    {"name": "张三 310101199001011234"},
]


def test_the_gate_s_shortcuts_give_great_expectations_own_answers(monkeypatch) -> None:
    """The registry suite as the gate runs it (numbers as NumPy columns, rows filtered by a
    condition over the columns read, each condition's rows of the table taken once per run)
    answers, expectation by expectation, what plain Great Expectations answers on the
    Arrow-backed frame, on a table where most expectations fail for some rows."""
    from registry_rows import registry_merchants

    from registry.config.score_model import load_score_model
    from registry.quality.suites import registry_check_frame, registry_suite_parameters

    gx_module = gx.patched()
    settings = Settings(_env_file=None)
    model = load_score_model(settings.config_dir, 1).model
    frame = registry_check_frame(pl.concat([
        registry_merchants(uscc=f"91310000MA{n:08d}", **changes)
        for n, changes in enumerate(_INCONSISTENT, start=3)] + [registry_merchants()] * 2),
        model)
    suite = load_suite(settings.expectations_dir, "registry_merchants")
    params = registry_suite_parameters(model)
    pending = runner.PendingDataDocs()
    result = runner.suite_result(frame, suite, params, data_docs=pending.at("gate/"))
    assert len(set(result.codes)) >= 6 and result.evaluated - result.passed >= 12
    # The filtered frames kept for the run went with it.
    engine = runner._batch_definitions[suite.name].data_asset.datasource.execution_engine
    assert gx._FILTERED not in engine.__dict__ and not engine._metric_cache

    from great_expectations.execution_engine.pandas_execution_engine import (
        PandasExecutionEngine,
    )

    monkeypatch.setattr(PandasExecutionEngine, "_apply_row_condition_filter",
                        PandasExecutionEngine._apply_row_condition_filter.__wrapped__)
    source = gx_module.get_context(mode="ephemeral").data_sources.add_pandas("plain")
    definition = source.add_dataframe_asset("plain").add_batch_definition_whole_dataframe("b")
    data = frame.select(suite.columns()).to_pandas(use_pyarrow_extension_array=True)
    plain = definition.get_batch(batch_parameters={"dataframe": data}).validate(
        gx_module.ExpectationSuite(**suite.document),
        result_format={"result_format": "BASIC"}, expectation_parameters=dict(params))
    gate = pending.runs()["gate/"].validation
    assert _answers(gate) == _answers(plain)
    assert [r.result.get("unexpected_percent") for r in gate.results] == [
        r.result.get("unexpected_percent") for r in plain.results]


def test_a_metric_id_is_the_one_great_expectations_writes(monkeypatch) -> None:
    """Every id GX asks of its kwargs while the gate validates staged batches and the registry
    suite (plain kwargs written as JSON directly, the rest converted as GX does) is the id GX's
    own ``to_id`` gives; and the direct way is taken for most of them."""
    from great_expectations.core.id_dict import IDDict
    from registry_rows import registry_merchants

    from registry.config.score_model import load_score_model
    from registry.quality.suites import registry_check_frame, registry_suite_parameters

    gx.patched()
    written = IDDict.to_id
    own = written.__wrapped__
    asked = {"ids": 0, "plain": 0}

    def checked(id_dict, id_keys=None, id_ignore_keys=None):
        asked["ids"] += 1
        keys = set(id_dict) - set(id_dict._id_ignore_keys)
        asked["plain"] += id_keys is None and len(keys) > 1 and all(
            gx._plain(id_dict[k]) for k in keys)
        answer = written(id_dict, id_keys, id_ignore_keys)
        assert answer == own(id_dict, id_keys, id_ignore_keys), dict(id_dict)
        return answer

    monkeypatch.setattr(IDDict, "to_id", checked)
    for _, frame, suite, params in _staged_runs():
        runner.suite_result(frame, suite, params)
    settings = Settings(_env_file=None)
    model = load_score_model(settings.config_dir, 1).model
    frame = registry_check_frame(pl.concat([
        registry_merchants(uscc=f"91310000MA{n:08d}", **changes)
        for n, changes in enumerate(_INCONSISTENT, start=3)]), model)
    runner.suite_result(frame, load_suite(settings.expectations_dir, "registry_merchants"),
                        registry_suite_parameters(model))
    assert asked["plain"] > asked["ids"] / 2 > 100


@pytest.mark.parametrize("value", [
    float("nan"), {1: "a"}, {"a": {True: 1}}, {"a", "b"}, [1, float("nan")], date(2026, 1, 1),
    b"x",
])
def test_kwargs_that_are_not_json_as_they_are_go_through_great_expectations(value) -> None:
    from great_expectations.core.id_dict import IDDict

    gx.patched()
    id_dict = IDDict(column="name", value=value)
    assert not gx._plain(value)
    assert id_dict.to_id() == IDDict.to_id.__wrapped__(id_dict)


def test_after_a_run_the_engine_keeps_neither_the_batch_nor_its_metrics() -> None:
    gx_module = gx.patched()
    _, frame, suite, params = _staged_runs()[1]
    source = gx_module.get_context(mode="ephemeral").data_sources.add_pandas("release")
    definition = source.add_dataframe_asset("release").add_batch_definition_whole_dataframe("b")
    data = frame.select(suite.columns()).to_pandas(use_pyarrow_extension_array=True)
    definition.get_batch(batch_parameters={"dataframe": data}).validate(
        gx_module.ExpectationSuite(**suite.document), expectation_parameters=dict(params))
    engine = source.execution_engine
    assert engine._metric_cache and engine.batch_manager.batch_data_cache
    gx.release_batch_data(source)
    assert not engine._metric_cache and not engine.batch_manager.batch_data_cache


def test_each_site_has_the_pages_great_expectations_builds_for_its_run(tmp_path) -> None:
    """The Data Docs of several runs built together (runner.data_docs_sites, through
    gx.build_site) are, site by site, the files and pages that Great Expectations' own
    build_data_docs builds for that run in a site of its own, static files aside: the suite's
    page copied from an earlier site or rendered, the index listing the run alone."""
    gx_module = gx.patched()
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    pending = runner.PendingDataDocs()
    for n, (_, frame, suite, params) in enumerate(_staged_runs()):
        runner.suite_result(frame, suite, params, data_docs=pending.at(f"{n}/"))
    runs = pending.runs()
    sites = runner.data_docs_sites(runs, tmp_path / "together")
    for prefix, run in runs.items():
        own = tmp_path / "own" / prefix
        context = gx_module.get_context(mode="ephemeral")
        context.add_data_docs_site(site_name="site", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(own)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        suite_id = ExpectationSuiteIdentifier(name=run.suite["name"])
        context.suites.add(gx_module.ExpectationSuite(**run.suite))
        key = ValidationResultIdentifier(
            expectation_suite_identifier=suite_id, run_id=RunIdentifier(run_time=run.run_time),
            batch_identifier=run.validation.batch_id)
        context.validation_results_store.set(key, run.validation)
        context.build_data_docs(site_names=["site"], resource_identifiers=[key, suite_id])

        expected = {p.relative_to(own).as_posix(): p for p in own.rglob("*")
                    if p.is_file() and p.relative_to(own).parts[0] != "static"}
        built = {p.relative_to(sites[prefix]).as_posix(): p
                 for p in sites[prefix].rglob("*") if p.is_file()}
        assert sorted(built) == sorted(expected) and len(built) == 3  # index, suite, run
        for path, page in expected.items():
            assert (_PER_BUILD.sub("", built[path].read_text())
                    == _PER_BUILD.sub("", page.read_text())), (prefix, path)
    # GX's static folder is what it copies into a site.
    static = gx.static_folder()
    assert sorted(p.relative_to(own / "static").as_posix()
                  for p in (own / "static").rglob("*") if p.is_file()) == sorted(
        path for path, _ in _files(static))


def _files(folder, path: str = ""):
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _files(entry, f"{path}{entry.name}/")
        else:
            yield path + entry.name, entry


_PANDERA = """
import sys
if sys.argv[1] == "hypothesis first":
    import hypothesis  # noqa: F401
import polars as pl
from registry._compat import pandera as pandera_internals
pa = pandera_internals.imported()
schema = pa.DataFrameSchema({"n": pa.Column(int, pa.Check.ge(0))})
schema.validate(pl.DataFrame({"n": [1, 2]}))
try:
    schema.validate(pl.DataFrame({"n": [-1]}))
except pa.errors.SchemaError:
    refused = True
else:
    refused = False
strategies = sys.modules["pandera.strategies.base_strategies"]
print(refused, "hypothesis" in sys.modules, strategies.HAS_HYPOTHESIS)
"""


@pytest.mark.parametrize(("first", "expected"), [
    ("nothing first", ["True", "False", "False"]),
    ("hypothesis first", ["True", "True", "True"]),
])
def test_pandera_validates_without_importing_hypothesis(first, expected) -> None:
    """pandera's built-in checks register and refuse as before; hypothesis, a test tool that
    pandera imports for its data-synthesis strategies when installed, is not imported, unless
    the process imported it already (then pandera's strategies have it)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _PANDERA, first], capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == expected, done.stderr
