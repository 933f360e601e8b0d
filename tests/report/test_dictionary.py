"""The data dictionary: every published table's contract on one page, in Chinese and English,
written beside each snapshot's report."""

from __future__ import annotations

import html
import re

from report_world import World

from registry.config.published import load_published_contracts
from registry.report.dictionary import data_dictionary_html
from registry.storage.layout import dictionary_key

CONTRACTS = load_published_contracts()


def test_the_dictionary_lists_every_column_of_every_contract() -> None:
    page = data_dictionary_html(list(CONTRACTS.values()), "20261130T000000000000Z-0000abcd")
    text = html.unescape(page)
    for contract in CONTRACTS.values():
        section = text.split(f'id="table-{contract.table}"', 1)[1].split("</section>", 1)[0]
        rows = re.findall(rf'<tr class="column" id="{contract.table}-([a-z0-9_]+)"', section)
        assert tuple(rows) == contract.column_names
        assert f'<code class="version">{contract.version}</code>' in section
        assert f'<code class="key">{", ".join(contract.key)}</code>' in section
        for column in contract.columns:
            assert column.description_zh in section and column.description_en in section
            assert column.label_zh in section and str(column.dtype) in section
            for allowed in column.values:
                assert f"<code>{allowed.value}</code>" in section
                assert allowed.description_zh in section and allowed.description_en in section
            if column.unit:
                assert f"<td>{column.unit}</td>" in section
    # Self-contained: it opens from disk with no connection.
    assert not re.search(r"<script|<link|src=|https?://", page)


def test_each_report_has_its_snapshots_dictionary_beside_it(world: World) -> None:
    for result in (world.first, world.second):
        page = world.storage.read_bytes(dictionary_key(result.snapshot_id)).decode("utf-8")
        assert result.snapshot_id in page
        for contract in CONTRACTS.values():
            assert f'id="table-{contract.table}"' in page
            assert f'<code class="version">{contract.version}</code>' in page
