"""Rendering the report page: the Jinja2 template ``registry/report/templates/report.html.j2``
(autoescaped: every name a council sent is escaped) with the Vega runtime inlined."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jinja2
import polars as pl

# JSON inside <script> must never close the element or open a comment.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


@dataclass(frozen=True)
class ReportData:
    """Everything the page shows, computed; :func:`report_html` only lays it out."""

    snapshot_id: str
    as_of: str
    published_at: str
    previous_snapshot: str | None
    code_version: str
    score_model_version: int
    headline: dict[str, int]
    regions: list[dict[str, str]]
    trusted: pl.DataFrame
    scores: pl.DataFrame
    changes: pl.DataFrame
    scorecards: list[dict[str, Any]]
    gifts: pl.DataFrame
    manifest_link: str
    # The snapshot's data dictionary: what each published column means.
    dictionary_link: str | None = None
    data_docs_links: list[str] = field(default_factory=list)
    charts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The joint complaint analysis' totals (registry.report.data.complaints_headline); None for
    # a snapshot published before it existed. Its charts are in ``charts``.
    complaints: dict[str, Any] | None = None


def vega_runtime_version() -> str:
    """The name of the bundle :func:`vega_runtime` returns: ``vl-convert-python``'s version and
    the Vega-Lite version altair writes (the bundle depends on nothing else)."""
    import vl_convert
    from altair.utils._importers import vl_version_for_vl_convert

    return f"vl-convert-{vl_convert.__version__}-vega-lite-{vl_version_for_vl_convert()}"


@cache
def vega_runtime() -> str:
    """The Vega + Vega-Lite + vega-embed JavaScript bundle shipped by ``vl-convert-python``,
    for the Vega-Lite version altair writes. Bundling it takes seconds: the report's writer
    stores it once per version (:func:`registry.report.writer.chart_runtime`). Raises
    ``RuntimeError`` if it could close the ``<script>`` element it is inlined in."""
    import vl_convert
    from altair.utils._importers import vl_version_for_vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=vl_version_for_vl_convert())
    if "</script" in bundle.lower():
        raise RuntimeError("the Vega bundle contains '</script' and cannot be inlined")
    return bundle


def _script_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).translate(_SCRIPT_SAFE)


@cache
def template_environment() -> jinja2.Environment:
    """The report's templates (``registry/report/templates``), HTML-escaped, with its filters."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("registry.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["script_json"] = _script_json
    env.filters["signed"] = lambda n: f"{n:+d}"
    env.filters["number"] = lambda v: "—" if v is None else (
        f"{v:g}" if isinstance(v, float) else str(v))
    return env


def reports_index_html(reports: list[dict[str, str]]) -> str:
    """The index page of the snapshots' reports: ``reports`` (``snapshot_id``, ``as_of``,
    ``committed_at``, ``link``) in the order given, newest first. Self-contained, escaped."""
    return template_environment().get_template("reports_index.html.j2").render(reports=reports)


def report_html(data: ReportData, runtime: str | None = None) -> str:
    """The complete, self-contained HTML page for ``data``. ``runtime`` is the inlined chart
    JavaScript (default: :func:`vega_runtime`). Text from the data is HTML-escaped, and chart
    specs are embedded as script-safe JSON."""
    template = template_environment().get_template("report.html.j2")
    return template.render(
        data=data,
        changes=data.changes.to_dicts(),
        gifts=data.gifts.to_dicts(),
        runtime=runtime if runtime is not None else vega_runtime(),
    )
