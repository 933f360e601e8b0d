"""Data Docs in storage: a site that Great Expectations built in a local folder, uploaded with
its static files (favicon, fonts) stored once for every run and its pages relinked to them."""

from __future__ import annotations

import contextlib
import posixpath
import re
from pathlib import Path

from registry.storage import AlreadyExists, Storage
from registry.storage.layout import DATA_DOCS_STATIC_PREFIX, PAGE_FILE

# The folder of a locally built site that holds its static files, and the pages' links to it.
_LOCAL_STATIC = "static/"
_STATIC_LINK = re.compile(r"""(["'])((?:\.\.?/)+)static/""")


def _static_relinked(html: str, page_key: str) -> str:
    to_static = posixpath.relpath(DATA_DOCS_STATIC_PREFIX, posixpath.dirname(page_key))
    return _STATIC_LINK.sub(lambda m: f"{m.group(1)}{to_static}/", html)


def upload_data_docs(storage: Storage, local_dir: Path, prefix: str) -> str:
    """Upload the Data Docs site built in ``local_dir`` under ``prefix`` (its pages) and
    ``reports/data_docs/static/`` (the static files, once for every run, with the pages'
    links rewritten to them). Returns the key of the site's ``index.html``."""
    present = {info.key for info in storage.list(DATA_DOCS_STATIC_PREFIX)}
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(local_dir).as_posix()
        if relative.startswith(_LOCAL_STATIC):
            key = DATA_DOCS_STATIC_PREFIX + relative[len(_LOCAL_STATIC):]
            if key not in present:
                # AlreadyExists: another run stored the same file meanwhile.
                with contextlib.suppress(AlreadyExists):
                    storage.put_if_absent(key, path.read_bytes())
            continue
        key = prefix + relative
        data = path.read_bytes()
        if path.suffix == ".html":
            data = _static_relinked(data.decode("utf-8"), key).encode("utf-8")
        storage.write_bytes(key, data)
    return prefix + PAGE_FILE
