"""What commands of several groups share: the progress display and the configured storage."""

from __future__ import annotations

import os
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


def flow_progress() -> AbstractContextManager[ProgressCallback]:
    """Progress on stderr of a command that runs the Prefect flows. Until the first step it
    says what it waits for: Prefect's temporary server takes some seconds to start."""
    from registry.config.settings import load_settings

    url = os.environ.get("PREFECT_API_URL")
    starting = (f"连接 Prefect 服务 {url} / connecting to the Prefect server at {url}" if url
                else "启动 Prefect 临时服务 / starting Prefect's temporary server")
    return cli_progress(load_settings(), sys.stderr, starting=starting)


def configured_storage() -> Storage:
    """The store at REGISTRY_STORAGE_URI."""
    from registry.config.settings import load_settings
    from registry.storage import open_storage

    return open_storage(load_settings())
