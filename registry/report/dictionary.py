"""The data dictionary: the published tables' contracts (:mod:`registry.config.published`) as one
self-contained HTML page in Chinese and English, written beside a snapshot's report by
:mod:`registry.report.writer`. Rendering only; the template is
``registry/report/templates/dictionary.html.j2`` (autoescaped, nothing loaded from the network).
"""

from __future__ import annotations

from collections.abc import Sequence

import jinja2

from registry.config.published import PublishedContract
from registry.report.page import template_environment


def _template() -> jinja2.Template:
    return template_environment().get_template("dictionary.html.j2")


def data_dictionary_html(contracts: Sequence[PublishedContract], snapshot_id: str) -> str:
    """The page describing ``contracts`` (in this order), for snapshot ``snapshot_id``: each
    table's version, key and description, and each column's type, whether it may be null, its
    unit, its Chinese and English descriptions and its allowed values with their meanings."""
    return _template().render(contracts=contracts, snapshot_id=snapshot_id)
