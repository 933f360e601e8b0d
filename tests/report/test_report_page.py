"""The report page of a published world: written at publication, rebuilt by `registry report`,
self-contained (no network reference), and free of personal data."""

from __future__ import annotations

import logging
import re
from datetime import date
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from fixtures.council_files import FIXTURES, personal_values
from report_world import HELD_BATCH, HELD_FILE, HELD_FILE_SHOWN, SH_KEPT, UPLOADS, World
from staged_rows import stage_three_regions
from typer.testing import CliRunner

from registry.cli import app
from registry.config.pii import MOBILE_PATTERN, RESIDENT_ID_PATTERN
from registry.publish import protocol as publish_protocol
from registry.publish import publish_snapshot
from registry.report import vega_runtime, write_report
from registry.snapshot.reader import read_latest
from registry.storage import LocalStorage
from registry.storage.layout import report_key, reports_index_key

runner = CliRunner()
# A URL that leaves the page: a scheme with //, or a protocol-relative //host.
NETWORK_URL = re.compile(r"^\s*(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
CSS_URL = re.compile(r"url\s*\(|@import", re.IGNORECASE)
URL_ATTRIBUTES = {"src", "href", "srcset", "action", "formaction", "poster", "data",
                  "background", "xlink:href", "ping", "manifest"}


def page_of(world: World, snapshot_id: str) -> str:
    return world.storage.read_bytes(report_key(snapshot_id)).decode("utf-8")


def without_runtime(page: str) -> str:
    """The page minus the inlined Vega library (which contains XML namespace URIs and the
    like as string constants, not references)."""
    runtime = vega_runtime()
    assert page.count(runtime) == 1
    return page.replace(runtime, "")


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in URL_ATTRIBUTES and value is not None:
                self.urls.append((tag, name, value))
            if name == "style" and value:
                self.styles.append(value)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def test_publication_writes_a_report_for_every_snapshot(world: World):
    for result in (world.first, world.second):
        assert result.report == report_key(result.snapshot_id)
        assert world.storage.exists(result.report)


def test_report_has_no_network_references(world: World):
    page = page_of(world, world.second.snapshot_id)
    refs = _References()
    refs.feed(page)
    assert refs.urls, "the parser saw no links at all: the test would prove nothing"
    assert [u for u in refs.urls if NETWORK_URL.match(u[2])] == []
    assert not {"link", "iframe", "img", "object", "embed", "base"} & set(refs.tags)
    assert not re.search(r"<script[^>]*\ssrc\s*=", page, re.IGNORECASE)
    assert [s for s in refs.styles if CSS_URL.search(s)] == []
    # Outside the inlined library, not even a URL in text or chart data.
    rest = without_runtime(page)
    assert not re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}", rest, re.IGNORECASE)


def test_report_links_resolve_next_to_the_report(world: World):
    page = page_of(world, world.second.snapshot_id)
    folder = Path(world.storage.uri_for(report_key(world.second.snapshot_id))).parent
    link = re.search(r'id="manifest-link" href="([^"]+)"', page).group(1)
    assert not link.startswith("/")
    assert (folder / link).resolve().name == "_manifest.json"
    assert (folder / link).is_file()
    dictionary = re.search(r'id="dictionary-link" href="([^"]+)"', page).group(1)
    assert (folder / dictionary).is_file()
    assert "verdict" in (folder / dictionary).read_text(encoding="utf-8")


def test_report_contains_no_personal_data(world: World):
    """The councils' files carry contact names and phone numbers; none of it, nor the file
    names they chose, may reach the page."""
    storage = world.storage
    personal = {v for name, _, dataset in UPLOADS
                for v in personal_values((FIXTURES / name).read_bytes(), dataset)}
    files: set[str] = set()
    for prefix in ("staged/", "quarantine/"):
        for info in storage.list(prefix):
            frame = storage.read_parquet(info.key)
            files |= set(frame.get_column("_source_key").drop_nulls().to_list())
    assert {"王敏", "13916000001", "李雷", "13700000001"} <= personal
    text = without_runtime(page_of(world, world.second.snapshot_id))
    assert [value for value in personal if value in text] == []
    assert [Path(key).name for key in files if Path(key).name in text] == []
    assert HELD_FILE not in text and "张三" not in text
    values = pl.Series([text])
    assert not values.str.contains(MOBILE_PATTERN).any()
    assert not values.str.contains(RESIDENT_ID_PATTERN).any()


def test_report_shows_the_snapshot_regions_changes_quality_and_gifts(world: World):
    page = page_of(world, world.second.snapshot_id)
    second = world.second
    assert second.snapshot_id in page and second.previous_snapshot in page
    for name in ("上海市", "Shanghai", "江苏省", "Jiangsu", "浙江省", "Zhejiang", "安徽省",
                 "Anhui"):
        assert name in page
    assert SH_KEPT in page  # disqualified: trusted yes -> no
    assert HELD_BATCH in page and "batch_row_count" in page  # its held reason
    anhui = page.split('id="region-AH"')[1].split('class="card"')[0]
    assert re.search(r"Held batches\s*:\s*1\b", " ".join(re.sub(r"<[^>]+>", " ", anhui).split()))
    # The cards count the uploads since the previous snapshot: Shanghai's file, whose top
    # failing check was a duplicated key, went into the first one; its new list has none.
    assert "DUPLICATE_KEY" in page_of(world, world.first.snapshot_id)
    assert "DUPLICATE_KEY" not in page
    shanghai = page.split('id="region-SH"')[1].split('class="card"')[0]
    assert re.search(r"Batches\s*1\b", " ".join(re.sub(r"<[^>]+>", " ", shanghai).split()))
    assert "西湖龙井礼盒" in page  # the top gift of its category
    # Headline: 2 merchants, three Shanghai merchants fewer (the one left in Shanghai's list is
    # suspended, and a suspended filing lists nobody); 2 trusted, three fewer.
    section = page.split('id="headline"')[1].split("</section>")[0]
    headline = " ".join(re.sub(r"<[^>]+>", " ", section).split())
    assert re.search(r"Merchants listed 2 -3 ", headline), headline
    assert re.search(r"Trusted merchants 2 -3 ", headline), headline


def test_held_batches_show_their_file_reasons_and_upload_time_in_words(world: World):
    """Jiangsu's clerk sent a file named after themself whose only row had a bad USCC."""
    page = page_of(world, world.second.snapshot_id)
    jiangsu = page.split('id="region-JS"')[1].split('<div class="card"')[0]
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", jiangsu)).split())
    assert HELD_FILE_SHOWN in text
    # The batch gate's reason in both languages, then its code; the quarantine reason too.
    assert re.search(r"批次接收 0 行.* The batch has 0 accepted rows.* batch_rows_below_floor",
                     text)
    assert re.search(r"不是有效的统一社会信用代码.* is not a valid unified social credit code"
                     r".*× 1 USCC_INVALID", text), text


def test_the_reports_index_lists_every_report_newest_first(world: World):
    key = reports_index_key()
    page = world.storage.read_bytes(key).decode("utf-8")
    links = re.findall(r'class="report-link" href="([^"]+)"', page)
    folder = Path(world.storage.uri_for(key)).parent
    assert [(folder / link).resolve() for link in links] == [
        Path(world.storage.uri_for(report_key(r.snapshot_id))).resolve()
        for r in (world.second, world.first)]
    refs = _References()
    refs.feed(page)
    assert [u for u in refs.urls if NETWORK_URL.match(u[2])] == []


def test_report_shows_the_joint_complaint_analysis(world: World):
    """Zhejiang's file has three accepted complaints from May 2024, inside the window of both
    snapshots: one about quality resolved in 14 days with 1,200.50 yuan recovered, one about
    after-sales service in progress, one other resolved in 20 days."""
    page = page_of(world, world.second.snapshot_id)
    section = page.split('id="complaints"')[1].split("</section>")[0]
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", section)).split())
    assert "投诉联合分析 Joint complaint analysis" in text
    assert "Complaints received 3 已办结 resolved 2 · 未办结 unresolved 1" in text
    assert "Recovered for consumers (CNY) 1,200.50" in text
    for name in ("complaints_monthly", "complaints_categories", "complaints_days",
                 "complaints_recovered", "complaints_cross_region"):
        assert f'id="spec-{name}"' in section
    # Category words, not codes, in the charts' data.
    for words in ("商品质量 quality", "售后服务 after sales", "其他 other", "浙江省 Zhejiang"):
        assert words in section
    assert '"after_sales"' in section and '"category_label": "售后服务 after sales"' in section


def test_data_docs_found_beside_the_report_are_linked(tmp_path):
    storage = LocalStorage(tmp_path / "root")
    stage_three_regions(storage)
    from registry.config.settings import Settings

    settings = Settings(_env_file=None)
    result = publish_snapshot(storage, settings, as_of=date(2026, 11, 30))
    docs = f"reports/{result.snapshot_id}/data_docs/index.html"
    storage.write_bytes(docs, b"<html>docs</html>")
    write_report(storage, settings, result.snapshot_id)
    page = storage.read_bytes(result.report).decode()
    assert 'href="data_docs/index.html"' in page


def test_report_failure_leaves_the_snapshot_published_and_says_so(tmp_path, monkeypatch,
                                                                    caplog):
    storage = LocalStorage(tmp_path / "root")
    stage_three_regions(storage)
    from registry.config.settings import Settings

    def broken(*args, **kwargs):
        raise RuntimeError("renderer exploded")

    monkeypatch.setattr(publish_protocol, "write_report", broken)
    with caplog.at_level(logging.ERROR, logger="registry.publish"):
        result = publish_snapshot(storage, Settings(_env_file=None), as_of=date(2026, 11, 30))
    assert result.report is None
    assert read_latest(storage)[0].snapshot_id == result.snapshot_id
    assert "PUBLISHED, but its report was NOT written" in caplog.text
    assert "renderer exploded" in caplog.text
    assert not storage.exists(report_key(result.snapshot_id))


@pytest.fixture
def cli_env(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    monkeypatch.setenv("REGISTRY_STORAGE_URI", world.storage.root_uri)
    monkeypatch.delenv("CI", raising=False)
    return world


def test_registry_report_rebuilds_latest_or_a_given_snapshot(cli_env: World):
    storage = cli_env.storage
    first = cli_env.first.snapshot_id
    storage.delete(report_key(first))
    result = runner.invoke(app, ["report", first])
    assert result.exit_code == 0, result.output
    assert storage.exists(report_key(first))
    assert result.stdout.strip() == storage.uri_for(report_key(first))
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    assert cli_env.second.snapshot_id in result.stdout
    result = runner.invoke(app, ["report", "20200101T000000000000Z-00000000"])
    assert result.exit_code == 1
    assert "no manifest" in result.stderr
