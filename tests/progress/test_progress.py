"""Progress is a bar on a terminal and plain lines everywhere else (a pipe, a file, CI)."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from staged_rows import stage_three_regions
from typer.testing import CliRunner

from registry.cli import app
from registry.config.settings import PROJECT_ROOT, Settings
from registry.progress import PLAIN_LINES, cli_progress, wants_bars
from registry.publish import publish_snapshot
from registry.storage import LocalStorage

runner = CliRunner()
ANSI = re.compile(r"\x1b\[")
# What a rich bar line looks like: bar glyphs, then a done/total count.
BAR_LINE = re.compile(r"[━╸╺]+.*\d+/\d+")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def assert_plain(text: str) -> None:
    assert not ANSI.search(text), "ANSI escape codes in plain output"
    assert "\r" not in text, "carriage returns (a redrawn bar) in plain output"
    assert not BAR_LINE.search(text), "a progress bar in plain output"


def test_bars_only_on_a_terminal_outside_ci():
    assert wants_bars(Settings(_env_file=None, CI=None), Terminal())
    assert not wants_bars(Settings(_env_file=None, CI="true"), Terminal())
    assert not wants_bars(Settings(_env_file=None, CI="1"), Terminal())
    assert wants_bars(Settings(_env_file=None, CI="false"), Terminal())
    assert not wants_bars(Settings(_env_file=None, CI=None), io.StringIO())


def run_steps(settings: Settings, stream: io.StringIO, total: int) -> str:
    with cli_progress(settings, stream) as progress:
        progress("build", 0, 1)
        progress("build", 1, 1)
        for done in range(total + 1):
            progress("ingest: uploads", done, total)
    return stream.getvalue()


def test_a_terminal_gets_a_bar():
    # The control for the plain-output tests: the same calls on a terminal do draw a bar.
    drawn = run_steps(Settings(_env_file=None, CI=None), Terminal(), 40)
    assert ANSI.search(drawn) and "━" in drawn


def test_plain_lines_are_few_and_keep_the_first_and_last_step():
    text = run_steps(Settings(_env_file=None, CI="true"), Terminal(), 1000)
    assert_plain(text)
    lines = text.splitlines()
    assert lines[:2] == ["[0/1] build", "[1/1] build"]
    assert lines[2] == "[0/1000] ingest: uploads" and lines[-1] == "[1000/1000] ingest: uploads"
    assert len(lines) <= 2 + PLAIN_LINES + 2


@pytest.fixture
def published_root(tmp_path, monkeypatch):
    storage = LocalStorage(tmp_path / "root")
    stage_three_regions(storage)
    publish_snapshot(storage, Settings(_env_file=None), as_of=date(2026, 11, 30))
    monkeypatch.setenv("REGISTRY_STORAGE_URI", storage.root_uri)
    monkeypatch.delenv("CI", raising=False)  # plain because there is no terminal, not CI
    return storage


def test_report_command_output_is_plain_without_a_terminal(published_root):
    result = runner.invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    assert_plain(result.output)
    assert "━" not in result.output
    assert "[3/3] report: written" in result.stderr.splitlines()
    assert result.stdout.strip().endswith("index.html")


def test_run_output_is_plain_without_a_terminal(tmp_path, monkeypatch):
    """The long CLI work end to end: uploads ingested one by one, then each publication and
    report stage, as plain lines."""
    monkeypatch.setenv("REGISTRY_STORAGE_URI", (tmp_path / "root").as_uri())
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    monkeypatch.delenv("CI", raising=False)
    fixtures = PROJECT_ROOT / "tests" / "fixtures"
    for name, region, dataset in [("merchants_js_bom.csv", "JS", "merchants"),
                                  ("inspections_ah.jsonl", "AH", "inspections")]:
        uploaded = runner.invoke(app, ["upload", str(fixtures / name), "--region", region,
                                       "--dataset", dataset])
        assert uploaded.exit_code == 0, uploaded.output
    result = runner.invoke(app, ["run", "--as-of", "2025-03-01"])
    assert result.exit_code == 0, result.output
    assert_plain(result.output)
    lines = result.stderr.splitlines()
    assert "[2/2] ingest: uploads" in lines
    assert "[2/6] publish: writing data files" in lines
    assert any(re.fullmatch(r"\[6/6\] publish: published \S+", line) for line in lines)
    assert "[3/3] report: written" in lines


def test_a_bar_says_what_it_waits_for_and_prints_log_lines_above_itself():
    """Log lines a handler would write across the bar (Prefect's console handler writes to
    stderr) come out whole, through the bar's console, and the handler writes nothing."""
    import logging

    class Handler(logging.StreamHandler):
        emitted = 0

        def emit(self, record: logging.LogRecord) -> None:
            Handler.emitted += 1
            super().emit(record)

    terminal = Terminal()
    handler = Handler(terminal)
    handler.setFormatter(logging.Formatter("LOG %(message)s"))
    logging.root.addHandler(handler)
    try:
        with cli_progress(Settings(_env_file=None, CI=None), terminal,
                          starting="starting Prefect's temporary server") as progress:
            logging.getLogger("registry.test").warning("a line from a flow")
            progress("ingest: uploads", 1, 2)
    finally:
        logging.root.removeHandler(handler)
    drawn = terminal.getvalue()
    assert "starting Prefect's temporary server" in drawn
    assert "LOG a line from a flow\n" in drawn
    assert Handler.emitted == 0  # not written across the bar by the handler itself
    assert not handler.filters  # nothing left on the handler after the bar


def test_plain_lines_start_with_what_the_work_waits_for():
    stream = io.StringIO()
    with cli_progress(Settings(_env_file=None, CI=None), stream, starting="starting X") as p:
        p("build", 1, 1)
    assert stream.getvalue().splitlines() == ["starting X", "[1/1] build"]
