"""Prefect internals the commands' temporary server relies on (:mod:`registry.cli.prefect_api`).

Written for prefect >=3.9,<3.10 (:data:`SUPPORTED`), checked when used
(:func:`temporary_server_command`): how Prefect runs its own temporary server
(``SubprocessASGIServer._run_uvicorn_command`` in prefect 3.9):

- its server application's factory (:data:`SERVER_APP`), run by uvicorn on loopback with its
  lifespan;
- the environment it adds: no UI, and the private ``PREFECT__SERVER_EPHEMERAL`` and
  ``PREFECT__SERVER_FINAL``, which make the application run only the services an ephemeral
  server runs;
- what its application answers when its SQLite database is busy: 503 Service Unavailable,
  without a ``Retry-After``, which Prefect's client retries after 2 s
  (``PrefectHttpxAsyncClient._send_with_retry``). The temporary server runs that application
  inside :class:`RetriedWhenBusy` (:func:`temporary_server_app`).

Nothing here imports Prefect in the command's process: the command line and environment are
built without loading its server, which is the point. :func:`temporary_server_app` runs in the
server's own process.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from registry._compat.versions import SupportedVersions

SUPPORTED = SupportedVersions("prefect", "3.9", "3.10", patches=__name__)

SERVER_APP = "prefect.server.api.server:create_app"
# What the temporary server runs: Prefect's application (SERVER_APP) in RetriedWhenBusy.
TEMPORARY_SERVER_APP = f"{__name__}:temporary_server_app"
_TEMPORARY_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                         "PREFECT__SERVER_FINAL": "1"}


def temporary_server_command(port: int) -> tuple[list[str], dict[str, str]]:
    """The command line that runs Prefect's temporary server on loopback ``port``, and the
    variables to add to its environment, as Prefect runs its own. Raises
    :class:`~registry._compat.versions.IncompatibleVersion` outside :data:`SUPPORTED`."""
    SUPPORTED.check()
    command = [sys.executable, "-m", "uvicorn", "--factory", TEMPORARY_SERVER_APP,
               "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    return command, dict(_TEMPORARY_SERVER_ENV)


def temporary_server_app() -> RetriedWhenBusy:
    """Prefect's server application (:data:`SERVER_APP`) inside :class:`RetriedWhenBusy`: the
    application factory uvicorn runs in the temporary server's process."""
    module, name = SERVER_APP.split(":")
    return RetriedWhenBusy(getattr(importlib.import_module(module), name)())


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class RetriedWhenBusy:
    """An ASGI application that answers an HTTP request again, after a short pause, while the
    application it wraps answers it 503 Service Unavailable.

    Prefect's server answers 503 for a database error a client may retry, above all SQLite's
    "database is locked": a transaction that read, then writes after another connection
    wrote, fails at once (no busy timeout helps). A command's pipeline run meets one on every
    run: the server records the ingest run's task events while the client creates the
    publish subflow's task run. Prefect's client waits 2 s before it tries again, then 4 s,
    8 s... Here the request is run again within the server after :data:`PAUSES_S`, as the
    client would run it (the failed transaction was rolled back; the request is the same
    bytes); only when every pause is spent does the 503 reach the client, which retries as
    before. Requests other than HTTP (the lifespan, the events websocket) pass through."""

    PAUSES_S = (0.02, 0.05, 0.1, 0.2, 0.4)

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away before its body
                return
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        for pause in self.PAUSES_S:
            if await self._answered(scope, bytes(body), receive, send, last=False):
                return
            await asyncio.sleep(pause)
        await self._answered(scope, bytes(body), receive, send, last=True)

    async def _answered(self, scope: Scope, body: bytes, receive: Receive, send: Send, *,
                        last: bool) -> bool:
        """Run the request once; False when it was answered 503 and may be run again (its
        answer then goes nowhere)."""
        status: int | None = None
        sent_body = False

        async def request() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            if status == 503 and not last:
                return
            await send(message)

        try:
            # A copy: Starlette's routing rewrites the scope it is given.
            await self.app(dict(scope), request, answer)
        except Exception:
            # Starlette answers an unhandled error, then raises it again for the server to
            # log: a 503 to run again is not logged.
            if status != 503 or last:
                raise
        return status != 503 or last
