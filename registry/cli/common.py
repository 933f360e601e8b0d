"""What commands of several groups share: the progress display and the configured storage."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def command_flow_runs() -> Iterator[None]:
    """How the flow runs a command starts are run: against the configured Prefect API or, when
    none is, against Prefect's temporary server started now (:mod:`registry.cli.prefect_api`),
    while the flows' modules load; and without heartbeats.

    A heartbeat tells Prefect that the process running a flow is alive, for runs nobody
    watches; here the person who typed the command sees its process end. Each run's heartbeat
    thread is joined when the run ends, up to two seconds while a heartbeat is in flight: a
    `registry run` with nothing to do, against a running server, took 5.8-6.1 s with them and
    5.0-5.8 s without, interleaved (deployments' runs, which workers start, keep them)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from registry.cli.prefect_api import temporary_prefect_api

    with (temporary_prefect_api() as server,
          temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None})):
        if server is not None:
            # What every flow command imports next (the pipeline imports each flow), loaded
            # while the server starts.
            import flows.pipeline  # noqa: F401

            if not server.answers():
                # Then, while it still starts (seconds: it imports Prefect's whole server, in
                # its own process), what the runs' first gate would import: Great
                # Expectations and pandera, also seconds, now paid on another core.
                from registry.ingest.validation import load_pandera
                from registry.quality.runner import load_great_expectations

                load_great_expectations()
                load_pandera()
            server.wait_until_healthy()
        yield


@contextmanager
def flow_progress() -> Iterator[ProgressCallback]:
    """Progress on stderr of a command that runs the Prefect flows (:func:`command_flow_runs`).
    Until the first step it says what it waits for: Prefect's temporary server takes some
    seconds to start."""
    from registry.config.settings import load_settings

    url = os.environ.get("PREFECT_API_URL")
    starting = (f"连接 Prefect 服务 {url} / connecting to the Prefect server at {url}" if url
                else "启动 Prefect 临时服务 / starting Prefect's temporary server")
    with (cli_progress(load_settings(), sys.stderr, starting=starting) as progress,
          command_flow_runs()):
        yield progress


def configured_storage() -> Storage:
    """The store at REGISTRY_STORAGE_URI."""
    from registry.config.settings import load_settings
    from registry.storage import open_storage

    return open_storage(load_settings())
