"""The `registry` command (and `python -m registry`): the command line of registry.cli, when the
pipeline extra is installed.

`pip install yrd-registry` alone installs the snapshot reader apps use, without the packages
the command line and the pipeline need. Run there, the command says what to install, in one
line, rather than failing on its first import.
"""

from __future__ import annotations

import importlib.util
import sys

# The command line's own packages and the pipeline's: a reader-only install has none of them.
# find_spec looks for each without importing it, so the check costs no start-up time.
PIPELINE_MODULES = ("typer", "rich", "pydantic_settings", "yaml", "prefect", "great_expectations")
NEEDS_PIPELINE = (
    "registry: 命令行工具需要安装 pipeline 依赖：pip install 'yrd-registry[pipeline]' / "
    "the command-line tool needs the pipeline extra: pip install 'yrd-registry[pipeline]'"
)


def main() -> None:
    if any(importlib.util.find_spec(name) is None for name in PIPELINE_MODULES):
        print(NEEDS_PIPELINE, file=sys.stderr)
        raise SystemExit(1)
    from registry.cli import app

    app()


if __name__ == "__main__":
    main()
