"""Pages as a person sees them, offline: Debian's headless Chromium with every host name
unresolvable but loopback, and what a stored page would load from another host.

Without chromium the browser tests skip locally (``apt-get install -y --no-install-recommends
chromium fonts-wqy-zenhei``); under CI=true they fail (``.ci/run`` installs it)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from registry.config.settings import Settings

WINDOW = (1200, 800)
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Any attempt to reach a host but loopback fails: a page that renders needed no network.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--virtual-time-budget=10000", f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


def chromium_or_skip() -> str:
    """The path of Debian's chromium; skips the test without it (fails it under CI=true)."""
    path = shutil.which("chromium")
    if path is None:
        message = ("Debian's chromium is not installed: apt-get install -y "
                   "--no-install-recommends chromium fonts-wqy-zenhei")
        if Settings(_env_file=None).in_ci:
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)
    return path


def chromium_command(chromium: str, profile: Path, *args: str) -> list[str]:
    return [chromium, *FLAGS, f"--user-data-dir={profile}", *args]


def run_chromium(chromium: str, profile: Path, *args: str) -> str:
    """Chromium's standard output (the DOM with ``--dump-dom``)."""
    return subprocess.run(chromium_command(chromium, profile, *args), capture_output=True,
                          text=True, timeout=120, check=True).stdout


# ---------------------------------------------------------------------------------------------
# What a page loads from another host

_REMOTE = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*(["']?)([^"')]+)\1\s*\)|@import\s+(["'])([^"']+)\3""",
                      re.IGNORECASE)
# Attributes whose URL the browser fetches by itself. Links a person may follow (<a href>,
# <form action>) are not loads.
_LOADING_ATTRIBUTES = {"src", "srcset", "poster", "data", "background"}


def _css_remote(css: str) -> list[str]:
    urls = [m.group(2) or m.group(4) for m in _CSS_URL.finditer(css)]
    return [url for url in urls if _REMOTE.match(url)]


class _RemoteLoads(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            loads = name in _LOADING_ATTRIBUTES or (tag == "link" and name == "href")
            if loads:
                candidates = value.split(",") if name == "srcset" else [value]
                self.urls += [u.strip() for u in candidates if _REMOTE.match(u)]
            if name == "style":
                self.urls += _css_remote(value)
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += _css_remote(data)


def remote_loads(document: str, *, css: bool = False) -> list[str]:
    """The URLs of other hosts that the HTML page (or, with ``css``, the stylesheet)
    ``document`` makes a browser load by itself."""
    if css:
        return _css_remote(document)
    parser = _RemoteLoads()
    parser.feed(document)
    parser.close()
    return parser.urls
