"""The report as a person sees it: Debian's headless Chromium opens the page from disk, with
every host name made unresolvable, runs the inlined Vega runtime, and draws the charts.

Skipped locally when chromium is missing (``apt-get install -y --no-install-recommends
chromium fonts-wqy-zenhei``); under CI=true a missing browser fails the test (``.ci/run``
installs it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from headless_chromium import chromium_or_skip
from report_world import World

from registry.report import GRADE_COLOURS
from registry.storage.layout import report_key

pytestmark = pytest.mark.slow

REGION_NAMES = ("上海市", "Shanghai", "江苏省", "Jiangsu", "浙江省", "Zhejiang", "安徽省", "Anhui")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # Any attempt to reach a host fails: charts that render did not need the network.
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--virtual-time-budget=15000", "--window-size=1200,2200",
)


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_or_skip()


def run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=True,
    )


@pytest.fixture(scope="module")
def page_url(world: World) -> str:
    path = Path(world.storage.uri_for(report_key(world.second.snapshot_id)))
    assert path.is_file()
    return path.as_uri()


def _chart(dom: str, name: str) -> str:
    """The rendered element of one chart: from its div to the spec that follows it."""
    start = dom.index(f'id="chart-{name}"')
    return dom[start:dom.index(f'id="spec-{name}"', start)]


def test_rendered_page_shows_regions_snapshot_and_drawn_charts(chromium, page_url, world,
                                                               tmp_path):
    dom = run_chromium(chromium, tmp_path / "profile", "--dump-dom", page_url).stdout
    assert world.second.snapshot_id in dom
    for name in REGION_NAMES:
        assert name in dom
    marks = {"trusted": "rect", "scores": "rect", "complaints_monthly": "rect",
             "complaints_categories": "rect", "complaints_days": "symbol",
             "complaints_recovered": "rect", "complaints_cross_region": "rect"}
    for name, mark in marks.items():
        chart = _chart(dom, name)
        # vega-embed marks success on the element; the SVG holds the drawn bars and axes.
        assert re.search(r'data-rendered="true"', dom[dom.index(f'id="chart-{name}"') - 200:
                                                      dom.index(f'id="chart-{name}"') + 200])
        assert "<svg" in chart and 'class="marks"' in chart
        assert f"mark-{mark}" in chart and re.search(r"<path[^>]+d=\"M", chart), name
    # The region axis is drawn from the data: labels come out of the chart itself.
    trusted = _chart(dom, "trusted")
    assert "上海市 Shanghai" in trusted and "安徽省 Anhui" in trusted
    # So are the complaint categories, in words.
    assert "商品质量 quality" in _chart(dom, "complaints_categories")


def test_screenshot_is_not_blank_and_shows_the_grade_colours(chromium, page_url, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}", page_url)
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        assert rgb.size == (1200, 2200)
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "a blank or nearly blank page"
    counts = {colour: n for n, colour in colours}
    # Bars of grade A and B (trusted merchants) are painted in their exact colours.
    for hex_colour in GRADE_COLOURS[:2]:
        rgb_colour = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
        assert counts.get(rgb_colour, 0) > 200, f"no {hex_colour} bars in the screenshot"
