"""What commands of several groups share: the progress display and the configured storage."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from registry.progress import cli_progress

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from registry.progress import ProgressCallback
    from registry.storage import Storage


def stderr_progress() -> AbstractContextManager[ProgressCallback]:
    """Progress on stderr: a bar on a terminal, plain lines in a pipe or in CI."""
    from registry.config.settings import load_settings

    return cli_progress(load_settings(), sys.stderr)


def configured_storage() -> Storage:
    """The store at REGISTRY_STORAGE_URI."""
    from registry.config.settings import load_settings
    from registry.storage import open_storage

    return open_storage(load_settings())
