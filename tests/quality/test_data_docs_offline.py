"""Data Docs open with no network: the stylesheets, scripts, fonts and logo that Great
Expectations' pages take from CDNs come from the registry's own copies, stored once under
``reports/data_docs/static/`` (docs/architecture.md §9.4). Offline, or where the CDNs are
blocked, the index otherwise shows a broken logo and two unstyled "Clear Filters" buttons."""

from __future__ import annotations

import base64
import hashlib
import posixpath
import re
from dataclasses import dataclass
from importlib import resources

import pytest
from gate_uploads import land, merchants_csv
from headless_chromium import chromium_or_skip, remote_loads, run_chromium

from registry.config.settings import Settings
from registry.ingest.pipeline import ingest_pending
from registry.storage import LocalStorage
from registry.storage.layout import DATA_DOCS_STATIC_PREFIX, REPORTS_PREFIX, batch_docs_prefix

# Bootstrap's .btn-secondary grey (#6c757d): the index's "Clear Filters" buttons.
BOOTSTRAP_SECONDARY = (108, 117, 125)
# Great Expectations' templates pin these scripts with Subresource Integrity hashes.
_PINNED_SCRIPT = re.compile(r'<script src="([^"]+)" integrity="(sha384-[^"]+)"')
_SCRIPT_SRC = re.compile(r'<script src="([^"]+)"')


@dataclass(frozen=True)
class Docs:
    storage: LocalStorage
    index_key: str  # a batch gate's Data Docs index.html


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Docs:
    """Local storage after one ingest run of a Shanghai merchant list."""
    storage = LocalStorage(tmp_path_factory.mktemp("data-docs") / "root")
    land(storage, "landing/SH/merchants/m.csv", merchants_csv(6, suspended=1))
    (result,) = ingest_pending(storage, Settings(_env_file=None)).results
    return Docs(storage, batch_docs_prefix("merchants", "SH", result.batch_id) + "index.html")


@pytest.mark.slow
def test_the_index_is_styled_and_its_scripts_run_with_every_host_unresolvable(docs, tmp_path):
    from PIL import Image

    chromium = chromium_or_skip()
    shot = tmp_path / "index.png"
    page = docs.storage.uri_for(docs.index_key)
    dom = run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", "--dump-dom",
                       f"file://{page}")
    # jQuery and bootstrap-table ran: the list of validations became a table with a pager.
    assert 'class="bootstrap-table bootstrap4"' in dom
    assert "Showing 1 to 1 of 1 rows" in dom
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
    colours = {colour: n for n, colour in rgb.getcolors(maxcolors=1 << 20)}
    # Bootstrap's stylesheet: the "Clear Filters" buttons are grey buttons, not bare ones.
    assert colours.get(BOOTSTRAP_SECONDARY, 0) > 1000
    # The logo is drawn in the navbar's corner, not replaced by its alt text.
    corner = rgb.crop((0, 0, 300, 70)).getcolors(maxcolors=1 << 16)
    assert sum(n for n, colour in corner if max(colour) < 80) > 300


def test_no_data_docs_page_or_stylesheet_loads_anything_from_another_host(docs):
    pages = [i.key for i in docs.storage.list(REPORTS_PREFIX) if i.key.endswith(".html")]
    assert len(pages) >= 3  # the index, the suite's page and the validation's page
    for key in pages:
        assert remote_loads(docs.storage.read_bytes(key).decode()) == [], key
    sheets = [i.key for i in docs.storage.list(DATA_DOCS_STATIC_PREFIX)
              if i.key.endswith(".css")]
    assert any("bootstrap.min.css" in key for key in sheets)
    for key in sheets:
        assert remote_loads(docs.storage.read_bytes(key).decode(), css=True) == [], key


def test_the_stored_scripts_are_the_files_great_expectations_pins(docs):
    """Byte for byte what the CDN serves: the hashes come from Great Expectations' template."""
    template = (resources.files("great_expectations") / "render" / "view" / "templates"
                / "js_script_imports.j2").read_text()
    pinned = {posixpath.basename(url): digest for url, digest in _PINNED_SCRIPT.findall(template)}
    assert set(pinned) == {"popper.min.js", "bootstrap.min.js"}
    page = docs.storage.read_bytes(docs.index_key).decode()
    folder = posixpath.dirname(docs.index_key)
    stored = {posixpath.basename(src): posixpath.normpath(posixpath.join(folder, src))
              for src in _SCRIPT_SRC.findall(page)}
    for name, digest in pinned.items():
        data = docs.storage.read_bytes(stored[name])
        assert stored[name].startswith(DATA_DOCS_STATIC_PREFIX + "vendor/")
        assert "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode() == digest
