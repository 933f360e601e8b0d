"""`python -m registry.cli`: the same as the `registry` command."""

from registry.cli import app

app()
