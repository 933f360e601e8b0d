"""Data Docs in storage: the sites of the runs an ingest run or a publication gathered
(:class:`registry.quality.runner.PendingDataDocs`), built together in local folders and
uploaded, each under its own prefix, with their static files (favicon, fonts, and the
stylesheets and scripts the pages would otherwise take from CDNs) stored once for every run
and the pages relinked to them.

The pages open with no network (docs/architecture.md §9.4). Great Expectations' templates load
Bootstrap, jQuery, Font Awesome, Vega and more from public CDNs, and its logo from its
web-assets bucket; offline, or where those hosts are blocked, a page shows a broken logo and
unstyled buttons. The registry ships the same files, taken once from the npm registry
(``static/vendor/``, whose README gives versions and origin), stores them with the site's own
static files, and points the pages' ``<script>``, ``<link>`` and ``<img>`` at them. Links for
people to follow (``<a href>``) stay as they are.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import re
import tempfile
from collections.abc import Iterator
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from registry._compat import gx as gx_internals
from registry.quality import runner
from registry.quality.runner import PendingDataDocs
from registry.storage import AlreadyExists, Storage
from registry.storage.layout import DATA_DOCS_STATIC_PREFIX, PAGE_FILE

log = logging.getLogger(__name__)

# The pages' links to a site's static files (a locally built site's ``static/`` folder).
_STATIC_LINK = re.compile(r"""(["'])((?:\.\.?/)+)static/""")

# The vendored files, under the static prefix as under the package's static/ folder.
_VENDOR = "vendor/"

# Every URL Great Expectations 1.24's page templates load from a CDN
# (render/view/templates/{page,page_minimal,index_page,js_script_imports}.j2), and the file of
# static/vendor/ that is the same file from the npm registry.
_CDN_FILES = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap@4.3.1/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap@4.3.1/dist/js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js@1.12.9/dist/umd/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table@1.19.1/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table@1.19.1/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js":
        "bootstrap-table@1.19.1/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css":
        "bootstrap-table@1.19.0/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css":
        "bootstrap-table@1.19.0/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css":
        "bootstrap-datepicker@1.9.0/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js":
        "bootstrap-datepicker@1.9.0/dist/js/bootstrap-datepicker.min.js",
    # The minified form of the same file, from the same tarball (150 KB instead of 860 KB).
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css":
        "forevolve-bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "fortawesome-fontawesome-free@6.6.0/css/all.min.css",
    # jsDelivr serves a major version's newest release; these are the newest when vendored.
    "https://cdn.jsdelivr.net/npm/vega@5": "vega@5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite@5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed@6.29.0/build/vega-embed.min.js",
}

# Images from Great Expectations' web-assets bucket, and the file of its own static files (the
# site's static/images/) that stands in. The dark theme's logo is not among them: the light
# one stands in, on the dark navbar.
_GX_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
_GX_IMAGES = {"logo-long.png": "images/logo-long.png",
              "full_logo_dark.png": "images/logo-long.png"}

# A tag that loads what it names, its src/href value, and its Subresource Integrity attributes
# (meaningless for a file of the storage, and a crossorigin script fails to load from file://).
_LOADING_TAG = re.compile(r"<(?:script|link|img)\b[^>]*>", re.IGNORECASE)
_SOURCE = re.compile(r"""\b(src|href)=(["'])(https?://[^"']+)\2""", re.IGNORECASE)
_INTEGRITY = re.compile(r"""\s+(?:integrity|crossorigin)=(["'])[^"']*\1""", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\((["']?)(https?://[^"')]+)\1\)""", re.IGNORECASE)


def _local_file(url: str) -> str | None:
    """The path under the static prefix that stands in for ``url``, or None."""
    if url in _CDN_FILES:
        return _VENDOR + _CDN_FILES[url]
    if url.startswith(_GX_ASSETS):
        # The logo's URL carries a cache-busting query (``?d={run time}``).
        return _GX_IMAGES.get(url[len(_GX_ASSETS):].split("?", 1)[0])
    return None


def _offline(html: str, key: str) -> str:
    """``html`` of the page (or stylesheet) stored at ``key``, its static links and the CDN
    files it loads pointed at the static prefix, relative to ``key``."""
    to_static = posixpath.relpath(DATA_DOCS_STATIC_PREFIX, posixpath.dirname(key)) + "/"
    html = _STATIC_LINK.sub(lambda m: f"{m.group(1)}{to_static}", html)
    unknown: list[str] = []

    def tag_offline(tag: re.Match[str]) -> str:
        text = tag.group(0)
        source = _SOURCE.search(text)
        if source is None:
            return text
        local = _local_file(source.group(3))
        if local is None:
            unknown.append(source.group(3))
            return text
        attribute, quote = source.group(1), source.group(2)
        link = f"{attribute}={quote}{to_static}{local}{quote}"
        return _INTEGRITY.sub("", text[:source.start()] + link + text[source.end():])

    def css_offline(url: re.Match[str]) -> str:
        local = _local_file(url.group(2))
        if local is None:
            unknown.append(url.group(2))
            return url.group(0)
        return f"url({url.group(1)}{to_static}{local}{url.group(1)})"

    html = _CSS_URL.sub(css_offline, _LOADING_TAG.sub(tag_offline, html))
    if unknown:
        # A Great Expectations release with other CDN files: the page needs the network.
        log.warning("Data Docs file %s still loads %s from the network", key,
                    ", ".join(sorted(set(unknown))))
    return html


def _vendored_files(folder: Traversable, path: str = "") -> Iterator[tuple[str, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            yield from _vendored_files(entry, f"{path}{entry.name}/")
        else:
            yield path + entry.name, entry


def _static_files() -> Iterator[tuple[str, Traversable]]:
    """(path under the static prefix, file) of GX's static files and the vendored ones."""
    yield from _vendored_files(gx_internals.static_folder())
    vendor = resources.files("registry.quality").joinpath("static", "vendor")
    for path, entry in _vendored_files(vendor):
        yield _VENDOR + path, entry


def _store_static_files(storage: Storage) -> None:
    """Store under ``reports/data_docs/static/`` what is not there yet: GX's static files and
    the vendored stylesheets, scripts and fonts, the same for every site."""
    present = {info.key for info in storage.list(DATA_DOCS_STATIC_PREFIX)}
    for path, entry in _static_files():
        key = DATA_DOCS_STATIC_PREFIX + path
        if key not in present:
            data = entry.read_bytes()
            if key.endswith(".css"):
                # Great Expectations' own stylesheet names its dark logo on the web.
                data = _offline(data.decode("utf-8"), key).encode("utf-8")
            # AlreadyExists: another run stored the same file meanwhile.
            with contextlib.suppress(AlreadyExists):
                storage.put_if_absent(key, data)


def site_index_key(prefix: str) -> str:
    """The key of the index of the Data Docs site stored under ``prefix``."""
    return prefix + PAGE_FILE


def _upload_site(storage: Storage, local_dir: Path, prefix: str) -> str:
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        key = prefix + path.relative_to(local_dir).as_posix()
        data = path.read_bytes()
        if path.suffix == ".html":
            data = _offline(data.decode("utf-8"), key).encode("utf-8")
        storage.write_bytes(key, data)
    return site_index_key(prefix)


def upload_data_docs(storage: Storage, pending: PendingDataDocs, *, under: str = ""
                     ) -> dict[str, str]:
    """Build the Data Docs site of every run in ``pending`` (:func:`runner.data_docs_sites`:
    one GX context, each suite's page rendered once) and upload each under ``under`` + the
    prefix it was kept at, with the pages' links rewritten to ``reports/data_docs/static/``
    (GX's static files and the vendored stylesheets, scripts and fonts, stored once for every
    run), so that they load nothing from the network. Returns prefix -> the key of its site's
    ``index.html`` (:func:`site_index_key`); nothing is built or stored when ``pending`` is
    empty. Storage errors propagate; the runs stay in ``pending``, so a retry stores them."""
    runs = pending.runs()
    if not runs:
        return {}
    with tempfile.TemporaryDirectory(prefix="registry-data-docs-") as tmp:
        sites = runner.data_docs_sites(runs, Path(tmp))
        _store_static_files(storage)
        return {prefix: _upload_site(storage, folder, under + prefix)
                for prefix, folder in sites.items()}
