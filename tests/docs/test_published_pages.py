"""Pages of a published registry as people see them, with no network: no page under
``reports/`` loads anything from another host, and headless Chromium draws what a council clerk
and a reader look at: the template, a receipt, the snapshot report and a Data Docs page.

The screenshots are checked on every run. With ``REGISTRY_UPDATE_SCREENSHOTS=1`` they are
written to ``docs/screenshots/`` (to commit), otherwise to a temporary folder."""

from __future__ import annotations

import html
import json
import os
import subprocess
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest
from fixtures.council_files import COUNCIL_UPLOADS, FIXTURES
from headless_chromium import WINDOW, chromium_command, chromium_or_skip, remote_loads
from typer.testing import CliRunner

from registry.cli import app
from registry.config.settings import Settings
from registry.ingest.pipeline import ingest_pending, upload_file
from registry.storage import LocalStorage
from registry.storage.layout import (
    DATA_DOCS_STATIC_PREFIX,
    REPORTS_PREFIX,
    dictionary_key,
    report_key,
    report_prefix,
)

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Read when the module is imported: an autouse fixture (tests/conftest.py) unsets REGISTRY_*.
UPDATE_SCREENSHOTS = os.environ.get("REGISTRY_UPDATE_SCREENSHOTS") == "1"
RECEIPT_OF = "complaints_zj.xlsx"  # a partly accepted upload: its receipt lists rejected rows


@dataclass(frozen=True)
class Published:
    storage: LocalStorage
    snapshot_id: str
    receipt_key: str  # the JSON receipt of RECEIPT_OF


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    """The council fixture files uploaded, ingested and published once, on local storage."""
    from registry.publish import publish_snapshot

    root = tmp_path_factory.mktemp("published") / "root"
    settings = Settings(_env_file=None, storage_uri=root.as_uri())
    storage = LocalStorage(root)
    receipts = {name: upload_file(storage, settings, FIXTURES / name, region=region,
                                  dataset=dataset).receipt_key
                for name, region, dataset in COUNCIL_UPLOADS}
    ingest_pending(storage, settings)
    result = publish_snapshot(storage, settings, as_of=date(2025, 3, 1))
    return Published(storage, result.snapshot_id, receipts[RECEIPT_OF])


def test_no_page_under_reports_loads_anything_from_another_host(published):
    storage, snapshot = published.storage, published.snapshot_id
    pages = [i.key for i in storage.list(REPORTS_PREFIX) if i.key.endswith(".html")]
    assert {report_key(snapshot), dictionary_key(snapshot)} <= set(pages)
    assert any(k.startswith(report_prefix(snapshot) + "data_docs/") for k in pages)
    assert any(k.startswith(REPORTS_PREFIX + "batches/") for k in pages)
    for key in pages:
        assert remote_loads(storage.read_bytes(key).decode()) == [], key
    for key in (i.key for i in storage.list(DATA_DOCS_STATIC_PREFIX) if i.key.endswith(".css")):
        assert remote_loads(storage.read_bytes(key).decode(), css=True) == [], key


# ---------------------------------------------------------------------------------------------
# Screenshots

_PAGE_STYLE = """
body { font-family: "WenQuanYi Zen Hei", sans-serif; margin: 24px; color: #212529; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 20px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #c8ccd0; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #e9ecef; } td.n { background: #f1f3f5; color: #6c757d; text-align: right; }
.rejected { color: #b02a37; } .summary { font-size: 15px; }
"""


def _html_page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="zh"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_PAGE_STYLE}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


def _column_letters(index: int) -> str:
    """Excel's name of the column at 0-based ``index``: A … Z, AA, AB …"""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def _template_page(workbook: Path) -> str:
    """Every sheet of the workbook as a grid, with Excel's column letters and row numbers."""
    import fastexcel

    reader = fastexcel.read_excel(workbook)
    body = []
    for name in reader.sheet_names:
        rows = reader.load_sheet(name, header_row=None).to_polars().rows()
        width = max((len(r) for r in rows), default=0)
        head = "".join(f"<th>{_column_letters(i)}</th>" for i in range(width))
        cells = "".join(
            f'<tr><td class="n">{n}</td>'
            + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row)
            + "</tr>" for n, row in enumerate(rows[:12], start=1))
        body.append(f"<h2>{html.escape(name)}</h2><table><tr><th></th>{head}</tr>"
                    f"{cells}</table>")
    return _html_page(f"{workbook.name} · 模板 template", "".join(body))


def _receipt_page(receipt: dict) -> str:
    facts = [("文件 file", receipt["file"]), ("地区 region", receipt["region"]),
             ("数据集 dataset", receipt["dataset"]), ("状态 status", receipt["status"]),
             ("批次 batch", receipt.get("batch_id") or "—")]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in facts)
    errors = "".join(
        f"<tr><td>{e['row']}</td><td>{html.escape(e['column'] or '')}</td>"
        f"<td>{html.escape(e['code'])}</td><td>{html.escape(e['message_zh'])}<br>"
        f"{html.escape(e['message_en'])}</td></tr>" for e in receipt["row_errors"])
    body = (f'<p class="summary">{html.escape(receipt["summary_zh"])}<br>'
            f'{html.escape(receipt["summary_en"])}</p><table>{rows}</table>'
            f'<h2 class="rejected">拒收的行 Rejected rows</h2><table><tr><th>行 row</th>'
            f"<th>列 column</th><th>代码 code</th><th>说明 message</th></tr>{errors}</table>")
    return _html_page("上传回执 Upload receipt", body)


def _template_workbook(folder: Path) -> Path:
    path = folder / "merchants_template_SH.xlsx"
    run = CliRunner().invoke(app, ["template", "merchants", "--region", "SH", "-o", str(path)])
    if "No such command" in run.output:
        pytest.skip("`registry template` does not exist yet: no template to screenshot")
    assert run.exit_code == 0, run.output
    return path


def _is_a_drawn_page(png: Path) -> None:
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
    assert rgb.size == WINDOW, png.name
    colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, f"{png.name}: blank or nearly blank"
    ink = sum(n for n, colour in colours if min(colour) < 200)
    assert ink > 0.02 * WINDOW[0] * WINDOW[1], f"{png.name}: almost nothing drawn"


def _optimised(png: Path) -> None:
    """Screenshots are text on flat colours: 256 colours lose nothing a reader would see."""
    from PIL import Image

    with Image.open(png) as image:
        small = image.convert("RGB").quantize(colors=256, dither=Image.Dither.NONE)
    small.save(png, optimize=True)


def test_screenshots_of_the_template_a_receipt_the_report_and_data_docs(published, tmp_path):
    chromium = chromium_or_skip()
    storage, snapshot = published.storage, published.snapshot_id
    out = SCREENSHOTS if UPDATE_SCREENSHOTS else tmp_path / "screenshots"
    out.mkdir(parents=True, exist_ok=True)

    pages = tmp_path / "pages"
    pages.mkdir()
    (pages / "template.html").write_text(_template_page(_template_workbook(tmp_path)))
    receipt = json.loads(storage.read_bytes(published.receipt_key))
    assert receipt["rejected"] > 0 and receipt["row_errors"]
    (pages / "receipt.html").write_text(_receipt_page(receipt))
    validations = sorted(
        i.key for i in storage.list(report_prefix(snapshot) + "data_docs/merchants/validations/")
        if i.key.endswith(".html"))
    assert validations
    urls = {
        "template": (pages / "template.html").as_uri(),
        "receipt": (pages / "receipt.html").as_uri(),
        "report": Path(storage.uri_for(report_key(snapshot))).as_uri(),
        "data_docs": Path(storage.uri_for(validations[0])).as_uri(),
    }
    # The four browsers run at once: each mostly waits on its own start-up.
    runs = {name: subprocess.Popen(
        chromium_command(chromium, tmp_path / f"profile-{name}", f"--screenshot={out}/{name}.png",
                         url), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for name, url in urls.items()}
    for name, run in runs.items():
        assert run.wait(timeout=120) == 0, name
    for name in urls:
        _is_a_drawn_page(out / f"{name}.png")
        _optimised(out / f"{name}.png")
