"""The Prefect API a command's flow runs talk to: the one configured, or else Prefect's
temporary server, started as the command begins (docs/architecture.md §13).

With no ``PREFECT_API_URL``, Prefect starts a temporary server on a command's first flow run:
it imports its server application into the command's process (2.4 s on a quiet machine), then
starts the server in a subprocess and waits for it (3.6 s) before the run can begin.
:func:`temporary_prefect_api` starts the same server, the same way (the application run by
uvicorn as an ephemeral server, without its UI, on the Prefect home's database:
:mod:`registry._compat.prefect`), but as soon as the command knows it needs one: the server
starts while the command imports its flows, and the command's process never imports the
server. The command's Prefect client is pointed at it
(``PREFECT_API_URL``, for this process only). When the command's flows are done, its logs and
events still queued are sent, then the server is stopped.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from registry._compat.prefect import temporary_server_command

_POLL_S = 0.05
_STOP_TIMEOUT_S = 5
_DRAIN_TIMEOUT_S = 10


class PrefectApiUnavailable(RuntimeError):
    """The temporary server did not answer in time, or exited."""


@dataclass
class TemporaryServer:
    """A Prefect server started for one command, at ``api_url``."""

    process: subprocess.Popen[bytes]
    api_url: str
    timeout_s: float
    # One HTTP client for every health check: a new one loads the CA bundle each time, 28 ms
    # of CPU every 50 ms while the server starts, taken from the server's own start on a
    # two-core machine whose other core imports the command's flows.
    _http: Any = field(default=None, init=False, repr=False)

    def answers(self) -> bool:
        """Whether the server answers its health check now (one try, no wait)."""
        import httpx

        if self._http is None:
            self._http = httpx.Client(timeout=2)
        try:
            return self._http.get(f"{self.api_url}/health").status_code == 200
        except httpx.HTTPError:
            return False

    def wait_until_healthy(self) -> None:
        """Return once the server answers its health check. Raises
        :class:`PrefectApiUnavailable` (in Chinese and English) if it exits first or does not
        answer within its start-up timeout (``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``,
        as for Prefect's own)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            if self.process.poll() is not None:
                raise PrefectApiUnavailable(
                    f"Prefect 临时服务启动失败（退出码 {self.process.returncode}）/ Prefect's "
                    f"temporary server exited with code {self.process.returncode} while "
                    "starting")
            if self.answers():
                return
            if time.monotonic() > deadline:
                raise PrefectApiUnavailable(
                    f"Prefect 临时服务 {self.timeout_s:.0f} 秒内未就绪 / Prefect's temporary "
                    f"server did not answer within {self.timeout_s:.0f} s at {self.api_url}")
            time.sleep(_POLL_S)

    def stop(self) -> None:
        """Stop the server (terminate, then kill after 5 s); safe to call twice."""
        if self._http is not None:
            self._http.close()
            self._http = None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    """A loopback port that nothing listens on now (the temporary server's, and the
    benchmarks' and tests' Prefect servers')."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def temporary_prefect_api() -> Iterator[TemporaryServer | None]:
    """Within the block, this process's Prefect client talks to the configured API, or, when
    none is configured and Prefect may start a temporary server, to one started now: yields
    it (call :meth:`TemporaryServer.wait_until_healthy` before the first flow run), or None
    when an API is configured (or none may be started: Prefect then says so itself)."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        yield None
        return
    port = free_port()
    command, server_env = temporary_server_command(port)
    server = TemporaryServer(
        process=subprocess.Popen(command, env={
            **os.environ, **server_env,
            **settings.to_environment_variables(exclude_unset=True)}),
        api_url=f"http://127.0.0.1:{port}/api",
        timeout_s=settings.server.ephemeral.startup_timeout_seconds)
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            try:
                yield server
            finally:
                _sent()
    finally:
        server.stop()


def _sent() -> None:
    """Wait until the flow runs' logs and events still queued in this process are sent, as
    Prefect's own test harness does before it stops its temporary server: otherwise they are
    sent at exit, to a server gone, and each is retried until it times out."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=_DRAIN_TIMEOUT_S)
    EventsWorker.drain_all(timeout=_DRAIN_TIMEOUT_S)
