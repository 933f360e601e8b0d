"""Great Expectations internals the quality gate relies on (:mod:`registry.quality.runner`).

Written for great-expectations >=1.24,<1.25 (:data:`SUPPORTED`), checked when the patches are
applied (:func:`patched`) and when a run's batch is let go (:func:`release_batch_data`):

- ``pandas_execution_engine.HASH_THRESHOLD`` set to 0. Great Expectations fingerprints every
  pandas batch under 1 GB by hashing every cell, just to label the batch; on a 1M-row batch
  that costs more than all the expectations together, and it validates nothing;
- ``DefaultJinjaView.__init__`` wrapped to give each new view's Jinja environment one shared
  bytecode cache (:class:`TemplatesCompiledOnce`): GX offers no setting for it, and without it
  every Data Docs build compiles the same templates again;
- ``Expectation.configuration`` built once per kwargs lookup and per expectation's dependency
  lookup, and a configuration turned into an expectation once within the latter
  (:func:`_configuration_read_once`): GX rebuilds the whole configuration (a pydantic
  ``dict()`` and a new ``ExpectationConfiguration``) for every single key its kwargs helpers
  look up, about a thousand times per suite run, a third of the CPU time of validating a small
  batch, and builds a new expectation from it for each metric an expectation depends on;
- ``IDDict.to_id`` written directly for kwargs that are JSON as they are
  (:func:`_plain_ids_written_directly`): the same ids, without GX's type-by-type conversion.
  With the previous item, the staged suites on tier S's 31 batches ran in 0.80 s against
  1.14 s (a process with both patches against one with neither, six rounds each, in turn
  twice);
- ``PandasExecutionEngine._apply_row_condition_filter`` wrapped so that a batch is filtered
  by a row condition once per run, and a column's domain over the columns it reads
  (:func:`_row_conditions_filtered_once`): each metric filtered the whole batch again;
- what is alive once GX is imported frozen out of the cyclic collector's full passes
  (``gc.freeze``);
- the execution engine's batch cache, metric cache and filtered frames cleared after a run
  (:func:`release_batch_data`);
- :data:`ONE_RUN_AT_A_TIME`: GX parses suite parameters with a module-global pyparsing
  grammar, which is not safe to use from two threads at once;
- ``import great_expectations`` without what the registry never uses (:func:`_imported_lean`),
  half of its time: ``scipy.stats`` and ``altair``, which it imports for one expectation and
  two metrics no registry suite uses (``expect_column_kl_divergence_to_be_less_than``, the
  Kolmogorov-Smirnov p-values), are bound as modules loaded on first use
  (:data:`LOADED_ON_FIRST_USE`); and SQLAlchemy, which it imports for its SQL data sources
  whenever it is installed (Prefect installs it), is hidden from it (:data:`HIDDEN`), so that
  it runs as it does without its ``sql`` extra: the registry validates pandas frames only;
- a Data Docs site built by its ``SiteBuilder``'s section and index builders
  (:func:`build_site`), which is ``SiteBuilder.build`` without the copy of GX's static folder
  into the site, and that folder found in GX's package (:func:`static_folder`).

``great_expectations`` takes seconds to import: :func:`patched` imports it on first use, never
when the ``registry`` package is imported.
"""

from __future__ import annotations

import functools
import gc
import logging
import re
import shutil
import threading
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import ModuleType
from typing import Any

import jinja2

from registry._compat.imports import imports_without
from registry._compat.versions import SupportedVersions

log = logging.getLogger(__name__)

SUPPORTED = SupportedVersions("great-expectations", "1.24", "1.25", patches=__name__)

# The ingest flow validates uploads in a thread pool. GX parses suite parameters with a module-
# global pyparsing grammar, and pyparsing settles each parse action's arity by trial on its first
# calls, which races between threads ("push_first() missing 1 required positional argument").
# Runs are CPU-bound Python under the GIL anyway, so serialising them costs little.
ONE_RUN_AT_A_TIME = threading.Lock()


class TemplatesCompiledOnce(jinja2.BytecodeCache):
    """The compiled code of every Data Docs template, kept for the life of the process.

    Great Expectations renders each page through a new view with a new Jinja environment, so
    without a shared cache it parses and compiles the same ~50 templates again on every run:
    most of the time of building a batch's Data Docs. A template's code depends only on its
    source (the bucket's checksum) and on the environment's settings, which every GX view
    shares; the filters it calls are looked up in the rendering view's own environment. So the
    pages come out the same. A changed template source misses the cache (checksum). Pages are
    rendered inside ``ONE_RUN_AT_A_TIME``, and a dict item is set atomically anyway."""

    def __init__(self) -> None:
        self._code: dict[str, tuple[str, Any]] = {}

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        checksum, code = self._code.get(bucket.key, (None, None))
        if checksum == bucket.checksum:
            bucket.code = code

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        self._code[bucket.key] = (bucket.checksum, bucket.code)


# The kwargs helpers of ``Expectation`` whose configuration is built once per outermost call.
_KWARGS_HELPERS = ("_get_runtime_kwargs", "_get_success_kwargs", "_get_domain_kwargs",
                   "_get_success_kwarg")
# And the method that asks them, and GX's ``get_metric_kwargs``, for each metric an expectation
# depends on; overridden by many expectation classes, each of which is wrapped.
_DEPENDENCIES = "get_validation_dependencies"
_lookup = threading.local()


def _configuration_read_once(expectation_class: type, configuration_class: type) -> None:
    """Make ``expectation_class``'s kwargs helpers (:data:`_KWARGS_HELPERS`) and its
    subclasses' ``get_validation_dependencies`` build ``self.configuration`` once per outermost
    call instead of once per key they look up, and, within such a call, turn a configuration
    (``configuration_class``) into an expectation once.

    ``get_validation_dependencies`` asks GX's ``get_metric_kwargs`` for each metric the
    expectation depends on, with ``self.configuration``; each ask turns that configuration
    into a new expectation (``to_domain_obj``, a pydantic model built and validated) only to
    read its kwargs, and reading them builds the configuration again. These calls only read
    the configuration's kwargs, and nothing changes the expectation or the configuration while
    one of them runs, so every build within the call is equal to the first: the results are the
    same dicts of the same values. No subclass in GX 1.24 overrides the helpers, the property
    or ``to_domain_obj``. Outside such a call (and on another thread) both are built afresh on
    each access, as before; within one, what was built is dropped when it returns."""
    build = expectation_class.configuration.fget
    to_domain_obj = configuration_class.to_domain_obj

    def once(kind: str, owner: Any, make: Any) -> Any:
        built = getattr(_lookup, "built", None)
        if built is None:
            return make(owner)
        # Keyed by id, the owner kept alive with it so that no id is reused meanwhile.
        held = built.get((kind, id(owner)))
        if held is None:
            held = built[(kind, id(owner))] = (owner, make(owner))
        return held[1]

    @functools.wraps(build)
    def configuration(expectation: Any) -> Any:
        return once("configuration", expectation, build)

    @functools.wraps(to_domain_obj)
    def domain_object(configuration: Any) -> Any:
        return once("expectation", configuration, to_domain_obj)

    def read_once(helper: Any) -> Any:
        @functools.wraps(helper)
        def with_configuration_read_once(expectation: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(_lookup, "built", None) is not None:
                return helper(expectation, *args, **kwargs)
            _lookup.built = {}
            try:
                return helper(expectation, *args, **kwargs)
            finally:
                _lookup.built = None

        return with_configuration_read_once

    expectation_class.configuration = property(configuration,
                                               doc=expectation_class.configuration.__doc__)
    configuration_class.to_domain_obj = domain_object
    for name in _KWARGS_HELPERS:
        setattr(expectation_class, name, read_once(getattr(expectation_class, name)))
    for cls in _with_subclasses(expectation_class):
        if _DEPENDENCIES in vars(cls):
            setattr(cls, _DEPENDENCIES, read_once(vars(cls)[_DEPENDENCIES]))


def _with_subclasses(cls: type) -> list[type]:
    """``cls`` and every class derived from it (imported so far), each once."""
    seen: dict[type, None] = {}
    pending = [cls]
    while pending:
        current = pending.pop()
        if current not in seen:
            seen[current] = None
            pending.extend(current.__subclasses__())
    return list(seen)


# Imported by ``import great_expectations`` for one expectation and two metrics the registry's
# suites do not use (module docstring): loaded when first used, if ever.
LOADED_ON_FIRST_USE = ("scipy.stats", "altair")
# Imported by ``import great_expectations`` when installed, for its SQL data sources.
HIDDEN = "sqlalchemy"


def _imported_lean() -> ModuleType:
    """``import great_expectations`` without :data:`HIDDEN`, and with the modules of
    :data:`LOADED_ON_FIRST_USE` not imported yet loaded when first used
    (:func:`~registry._compat.imports.imports_without`)."""
    with imports_without(hidden=(HIDDEN,), loaded_on_first_use=LOADED_ON_FIRST_USE):
        import great_expectations
    return great_expectations


# Upload tasks run in threads: the first of them imports and patches GX, the others wait.
_PATCHING = threading.Lock()


def patched() -> ModuleType:
    """``great_expectations``, imported, with the patches applied once per process, whichever
    threads ask at once. Raises :class:`~registry._compat.versions.IncompatibleVersion`
    outside :data:`SUPPORTED`."""
    with _PATCHING:
        return _patched()


@functools.cache
def _patched() -> ModuleType:
    SUPPORTED.check()
    # Imported here, not at the top: great_expectations takes seconds to import.
    gx = _imported_lean()
    from great_expectations.core.id_dict import IDDict
    from great_expectations.execution_engine import pandas_execution_engine
    from great_expectations.expectations.expectation import Expectation
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )
    from great_expectations.render.view.view import DefaultJinjaView

    # The batch fingerprint hashes every cell to label the batch; see the module docstring.
    pandas_execution_engine.HASH_THRESHOLD = 0
    # GX offers no setting for its views' Jinja environment: give each new one the cache.
    templates = TemplatesCompiledOnce()
    view_init = DefaultJinjaView.__init__

    @functools.wraps(view_init)
    def view_init_with_templates_compiled_once(view: Any, *args: Any, **kwargs: Any) -> None:
        view_init(view, *args, **kwargs)
        view.env.bytecode_cache = templates

    DefaultJinjaView.__init__ = view_init_with_templates_compiled_once
    # Each kwargs lookup rebuilt the whole configuration; see _configuration_read_once.
    _configuration_read_once(Expectation, ExpectationConfiguration)
    # Each metric filtered the whole batch again; see _row_conditions_filtered_once.
    _row_conditions_filtered_once(pandas_execution_engine.PandasExecutionEngine)
    # Each metric's id converted plain kwargs for JSON; see _plain_ids_written_directly.
    _plain_ids_written_directly(IDDict)
    # What is alive now (GX's modules and pandas', Prefect's and the registry's when loaded:
    # a few hundred thousand objects) lives as long as the process. Frozen, the cyclic
    # collector no longer walks it on every full pass, as the gate's collections after large
    # runs did (registry.quality.runner): 0.1 s each, half of a 240,000-row batch's run.
    gc.freeze()
    return gx


# A name in a pandas query condition (quoted text taken out first).
_CONDITION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONDITION_QUOTED = re.compile(r"\"[^\"]*\"|'[^']*'")


def condition_names(row_condition: str) -> list[str]:
    """Every name a pandas query condition mentions, outside its quoted text, in first-mention
    order: column names, and words such as ``and`` or ``isnull`` that name no column (what a
    suite reads: :meth:`registry.quality.suites.Suite.columns`)."""
    return list(dict.fromkeys(_CONDITION_NAME.findall(_CONDITION_QUOTED.sub("", row_condition))))


def _condition_text(row_condition: Any) -> str | None:
    """The pandas query text of a row condition: a string (``condition_parser`` pandas) or
    GX's pass-through condition, as a dict or an object; None for any other condition."""
    if isinstance(row_condition, str):
        return row_condition
    if isinstance(row_condition, dict):
        text = row_condition.get("pass_through_filter")
    else:
        text = getattr(row_condition, "pass_through_filter", None)
    return text if isinstance(text, str) else None


def _row_conditions_filtered_once(engine_class: type) -> None:
    """Filter a batch by a row condition once per run, and over the columns that are read.

    Each metric of an expectation with a ``row_condition`` asks ``get_domain_records`` for its
    domain, and each ask filters the whole batch again (``DataFrame.query``, which takes every
    row it keeps of every column), only for the metric to read one column, or the table's row
    count and column types. On Arrow-backed pandas those takes were half the time of the
    registry suite's run. Here, within a run:

    - a column's domain is filtered over that column and the columns the condition names;
    - a table's domain (all columns) is filtered once per condition and kept until
      :func:`release_batch_data`, which ends the run.

    The rows kept are the same, and so are the values the metrics read. The filtered frames
    kept for a run are about as large as the batch's own Arrow data."""
    apply_filter = engine_class._apply_row_condition_filter

    @functools.wraps(apply_filter)
    def filtered_once(engine: Any, data: Any, row_condition: Any, domain_kwargs: dict
                      ) -> Any:
        text = _condition_text(row_condition)
        if text is None:
            return apply_filter(engine, data, row_condition, domain_kwargs)
        column = domain_kwargs.get("column")
        key = (id(data), text, domain_kwargs.get("condition_parser"), column)
        kept = engine.__dict__.setdefault(_FILTERED, {})
        if key not in kept:
            if column is not None:
                names = {column, *condition_names(text)}
                data = data[[c for c in data.columns if c in names]]
            kept[key] = apply_filter(engine, data, row_condition, domain_kwargs)
        return kept[key]

    engine_class._apply_row_condition_filter = filtered_once


def _plain(value: Any) -> bool:
    """Whether ``value`` is JSON as it is: None, a str, int, bool or finite-or-infinite (not
    NaN) float, or a list, tuple or str-keyed dict of such values, by exact type."""
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return True
    if kind is float:
        return value == value  # NaN is written as null by GX's conversion
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    if kind is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    return False


def _plain_ids_written_directly(id_dict_class: type) -> None:
    """Make ``IDDict.to_id`` skip ``convert_to_json_serializable`` for kwargs that are JSON
    already (:func:`_plain`).

    Every metric a run resolves is keyed by the ids of its domain and value kwargs, and GX
    builds each of those ids by converting the kwargs for JSON, writing them as sorted JSON
    and hashing that. The conversion tests each value against a dozen types (numpy's among
    them, for ``None`` too) before it returns the value as it was: a tenth of the time of
    validating a small batch. For plain values the conversion is the identity, but for tuples,
    which ``json.dumps`` writes as lists as well, so the JSON and the id are the same. Any
    other value, and any call naming its keys, goes through GX's own ``to_id``."""
    import hashlib
    import json

    to_id = id_dict_class.to_id

    @functools.wraps(to_id)
    def plain_to_id(id_dict: Any, id_keys: Any = None, id_ignore_keys: Any = None) -> Any:
        if id_keys is not None or id_ignore_keys is not None:
            return to_id(id_dict, id_keys, id_ignore_keys)
        keys = set(id_dict) - set(id_dict._id_ignore_keys)
        if len(keys) < 2 or not all(_plain(id_dict[k]) for k in keys):
            return to_id(id_dict)
        text = json.dumps({k: id_dict[k] for k in keys}, sort_keys=True)
        return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()

    id_dict_class.to_id = plain_to_id


# Where an execution engine keeps the run's filtered frames (_row_conditions_filtered_once).
_FILTERED = "_registry_filtered"


def release_batch_data(source: Any) -> None:
    """Let go of what the execution engine of the data source ``source`` keeps of a run when
    it is over: the batch's pandas frame, and the metrics computed on it.

    The frame: GX holds its latest context in a module global, so the frame of the last run
    (about 200 MB for a million merchant rows) stayed alive until the next run, through a whole
    publication after the last batch's gate; and the data sources the gate validates with live
    as long as the process.

    The metrics: an engine caches every metric it resolves, keyed by the metric, its domain
    (which names the batch by its data source and asset, the same for every run of a suite)
    and its arguments, and takes a metric from that cache when a run's own results lack one.
    The gate's data sources outlive a run, so the cache is emptied after each: every run
    starts from an empty cache, as with an engine of its own, and the cache does not grow
    with every batch of the process.

    Within :data:`SUPPORTED`, if the attributes are not there, the run's result stands and only
    the memory is kept (a warning is logged; tests/quality/test_suites.py and
    tests/compat/test_compat.py then fail)."""
    SUPPORTED.check()
    try:
        engine = source.execution_engine
        if engine is not None:
            engine.batch_manager.batch_data_cache.clear()
            engine.batch_manager.reset_batch_cache()
            engine._metric_cache.clear()
            engine.__dict__.pop(_FILTERED, None)
    except AttributeError as exc:
        log.warning("could not release Great Expectations' copy of the batch: %s", exc)


# The folder of a site that holds its suites' pages (HtmlSiteStore's ``filepath_prefix``).
_SUITE_PAGES = "expectations"


def build_site(context: Any, folder: Path, resource_identifiers: list[Any], *,
               suite_pages_from: Path | None = None) -> None:
    """Build into ``folder`` the Data Docs site of ``resource_identifiers`` (validation result
    and suite identifiers of ``context``'s stores) as ``context.build_data_docs`` builds a site
    there: their pages, then the index of the pages in the folder. Two differences: GX's static
    files are not copied in (GX copies its whole static folder into every site it builds, five
    folders of fonts, images and stylesheets, a third of a small site's build; the registry
    stores them once: :func:`static_folder`); and with ``suite_pages_from``, the suites' pages
    of that site are copied in, instead of being rendered again, before the index is built.
    Raises :class:`~registry._compat.versions.IncompatibleVersion` outside :data:`SUPPORTED`."""
    SUPPORTED.check()
    from great_expectations.render.renderer.site_builder import SiteBuilder

    builder = SiteBuilder(
        data_context=context, site_name="site",
        store_backend={"class_name": "TupleFilesystemStoreBackend",
                       "base_directory": str(folder)},
        site_index_builder={"class_name": "DefaultSiteIndexBuilder"},
    )
    # SiteBuilder.build in GX 1.24: each section builder, copy_static_assets, the index builder.
    for section in builder.site_section_builders.values():
        section.build(resource_identifiers=resource_identifiers)
    if suite_pages_from is not None:
        shutil.copytree(suite_pages_from / _SUITE_PAGES, folder / _SUITE_PAGES,
                        dirs_exist_ok=True)
    builder.site_index_builder.build()


def static_folder() -> Traversable:
    """GX's static folder (favicon, fonts, images, stylesheets), which every site it builds
    links as ``static/``: what ``HtmlSiteStore.copy_static_assets`` copies into a site."""
    SUPPORTED.check()
    return resources.files("great_expectations").joinpath("render", "view", "static")
