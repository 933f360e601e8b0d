"""The chart runtime every report inlines is bundled once per version and stored: later
reports read the stored copy back."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.report import page, writer
from registry.storage import LocalStorage
from registry.storage.layout import chart_runtime_key


def test_the_runtime_is_bundled_once_then_read_back(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalStorage(tmp_path)
    first = writer.chart_runtime(storage)
    assert first == page.vega_runtime()
    key = chart_runtime_key(page.vega_runtime_version())
    assert storage.read_bytes(key) == first.encode("utf-8")

    def bundled_again() -> str:
        raise AssertionError("the runtime was bundled again")

    monkeypatch.setattr(writer, "vega_runtime", bundled_again)
    assert writer.chart_runtime(storage) == first


def test_another_version_is_bundled_and_stored_beside(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    storage = LocalStorage(tmp_path)
    writer.chart_runtime(storage)
    monkeypatch.setattr(writer, "vega_runtime_version", lambda: "vl-convert-9-vega-lite-v9")
    monkeypatch.setattr(writer, "vega_runtime", lambda: "/* v9 */")
    assert writer.chart_runtime(storage) == "/* v9 */"
    assert storage.read_bytes(chart_runtime_key("vl-convert-9-vega-lite-v9")) == b"/* v9 */"
