"""The `registry` command line (DESIGN.md §8). Commands are thin: they parse options, call one
library function, and print its result for people (or as JSON with --json)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="registry",
    help="Yangtze River Delta imported-goods assurance registry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


if __name__ == "__main__":
    app()
