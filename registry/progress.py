"""Progress of long CLI work (many uploads to ingest, the stages of a publication).

Library functions and flows take an optional :data:`ProgressCallback` and know nothing about
terminals; only the CLI turns the calls into something to look at, through
:func:`cli_progress`: a rich progress bar on an interactive terminal, plain log lines when
output goes to a file or a pipe, or when ``CI`` is set (CI logs keep every carriage return and
escape code a bar would write).

While a bar is drawn, log lines that a handler of the root logger would write onto the same
stream (Prefect's console handler among them) are printed above the bar instead of through it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from registry.config.settings import Settings

ProgressCallback = Callable[[str, int, int], None]
"""``progress(description, done, total)``: ``done`` of ``total`` steps are finished and the
work is now at ``description``. Called from the thread that does the work."""

# Plain mode logs about this many lines per description, however many steps there are.
PLAIN_LINES = 10


def wants_bars(settings: Settings, stream: IO[str]) -> bool:
    """Whether to draw bars: only on an interactive terminal, and never in CI."""
    return stream.isatty() and not settings.in_ci


class _PlainLines:
    """Plain log lines: the first step and every change of description, about
    :data:`PLAIN_LINES` evenly spaced steps in between, and the last step."""

    def __init__(self, stream: IO[str]):
        self._stream = stream
        self._last: tuple[str, int] | None = None

    def __call__(self, description: str, done: int, total: int) -> None:
        every = max(1, math.ceil(total / PLAIN_LINES))
        changed = self._last is None or self._last[0] != description
        due = changed or done >= total or done % every == 0
        if due and self._last != (description, done):
            print(f"[{done}/{total}] {description}", file=self._stream, flush=True)
        self._last = (description, done)


class _AboveTheBar(logging.Filter):
    """Put on a handler that writes to the bar's stream: prints the handler's line through the
    bar's console (above the bar) and stops the handler from writing it across the bar."""

    def __init__(self, handler: logging.Handler, console: Console):
        super().__init__()
        self._handler = handler
        self._console = console

    def filter(self, record: logging.LogRecord) -> bool:
        self._console.print(self._handler.format(record), markup=False, highlight=False,
                            soft_wrap=True)
        return False


@contextmanager
def _logs_above(console: Console, stream: IO[str]) -> Iterator[None]:
    diverted = [(handler, _AboveTheBar(handler, console)) for handler in logging.root.handlers
                if getattr(handler, "stream", None) is stream]
    for handler, divert in diverted:
        handler.addFilter(divert)
    try:
        yield
    finally:
        for handler, divert in diverted:
            handler.removeFilter(divert)


@contextmanager
def cli_progress(settings: Settings, stream: IO[str], starting: str | None = None
                 ) -> Iterator[ProgressCallback]:
    """A progress callback that draws on ``stream`` for the duration of the block: one rich
    bar (its description and total follow the calls) on a terminal, plain lines otherwise.
    ``starting`` says what the work waits for before its first step (a line of its own in
    plain mode)."""
    if not wants_bars(settings, stream):
        if starting:
            print(starting, file=stream, flush=True)
        yield _PlainLines(stream)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=stream),
    ) as bars, _logs_above(bars.console, stream):
        task = bars.add_task(starting or "starting", total=None)

        def advance(description: str, done: int, total: int) -> None:
            bars.update(task, description=description, completed=done, total=total)

        yield advance
