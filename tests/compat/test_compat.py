"""Every patch of another library's internals checks the installed version against the range it
was written for: the installed versions pass, and any other version is refused loudly."""

from __future__ import annotations

import pytest

from registry._compat import gx, opencc, versions
from registry._compat.versions import IncompatibleVersion, SupportedVersions

PATCHED = [gx.SUPPORTED, opencc.SUPPORTED]


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
        gx.patched.__wrapped__()
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
