"""An office's own form writes a note in brackets after a column's name: the values it takes
(状态（有效/暂停/撤销）), the date format (有效期至(年-月-日)), or that it is required
(备案编号【必填】). The column is the one its name says; refusing the whole file for the note
would also refuse every revocation in it."""

from __future__ import annotations

from council_world import CouncilWorld, csv_bytes, filing
from typer.testing import CliRunner

from registry.cli import app

# Header of the council_world rows -> the office's header with its note.
NOTED = {"Status": "状态（有效/暂停/撤销）", "Valid Until": "有效期至(年-月-日)",
         "Filing ID": "备案编号【必填】", "Chinese Label": "中文标签 (是/否)"}


def _office_form(rows: list[dict[str, str]]) -> bytes:
    return csv_bytes([{NOTED.get(k, k): v for k, v in row.items()} for row in rows])


def test_a_revocation_on_the_offices_own_form_is_read(tmp_path) -> None:
    """Jiangsu lists three merchants, then revokes X on its own form, whose headers carry
    notes. The file is read, not refused: X is no longer trusted."""
    w = CouncilWorld(tmp_path)
    x, y, z = w.three_listed("JS")
    form = tmp_path / "江苏备案.csv"
    form.write_bytes(_office_form([filing("JS", "JS-1", x, Status="撤销")]))
    check = CliRunner().invoke(app, ["check", str(form), "--region", "JS",
                                     "--dataset", "merchants", "--json"])
    assert check.exit_code == 0, check.output
    key = w.upload("JS", "merchants", form.read_bytes(), name=form.name)
    receipt = w.receipt(w.ingest()[key])
    assert (receipt["file_errors"], receipt["accepted"]) == ([], 1)
    w.publish()
    assert w.merchant(x) is None
    assert {w.merchant(u)["verdict"] for u in (y, z)} == {"trusted"}


def test_a_note_that_names_another_column_does_not_hide_it(tmp_path) -> None:
    """Guard: two headers that differ only in their notes (有效期至（原）, 有效期至（新）) name
    one column twice, and the file is refused saying so, not read from either."""
    row = filing("JS", "JS-1", "91320000000000001X")
    data = csv_bytes([{**{("有效期至（原）" if k == "Valid Until" else k): v
                          for k, v in row.items()}, "有效期至（新）": "2028-12-31"}])
    form = tmp_path / "两列.csv"
    form.write_bytes(data)
    check = CliRunner().invoke(app, ["check", str(form), "--region", "JS",
                                     "--dataset", "merchants", "--json"])
    assert check.exit_code == 2
    assert "DUPLICATE_COLUMN" in check.stdout
