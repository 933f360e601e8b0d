"""Prefect's temporary server for a command (registry.cli.prefect_api): started only when no
API is configured, answering before the first flow run, gone when the command ends; and a
server that cannot start is told in Chinese and English, as a server out of reach."""

from __future__ import annotations

import subprocess

import pytest
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

from registry._compat import prefect as prefect_compat
from registry.cli import prefect_api
from registry.cli.errors import EXIT_UNAVAILABLE, failure_of


def test_a_configured_api_is_used_and_no_server_is_started(monkeypatch) -> None:
    def no_server(*args, **kwargs):
        raise AssertionError("a server was started although an API is configured")

    monkeypatch.setattr(subprocess, "Popen", no_server)
    with (temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}),
          prefect_api.temporary_prefect_api() as server):
        assert server is None
        assert get_current_settings().api.url == "http://127.0.0.1:9/api"


def test_without_an_api_a_server_answers_within_the_block_and_is_gone_after(
        prefect_home) -> None:
    from prefect.client.orchestration import get_client

    with (temporary_settings(restore_defaults={PREFECT_API_URL}),
          prefect_api.temporary_prefect_api() as server):
        assert server is not None
        server.wait_until_healthy()
        assert get_current_settings().api.url == server.api_url
        with get_client(sync_client=True) as client:
            assert client.api_url == server.api_url + "/"
            assert client.api_healthcheck() is None
    assert server.process.poll() is not None
    assert get_current_settings().api.url != server.api_url


def test_a_server_that_cannot_start_is_told_as_unavailable(prefect_home, monkeypatch) -> None:
    monkeypatch.setattr(prefect_compat, "TEMPORARY_SERVER_APP",
                        "registry_no_such_module:create_app")
    with (temporary_settings(restore_defaults={PREFECT_API_URL}),
          prefect_api.temporary_prefect_api() as server,
          pytest.raises(prefect_api.PrefectApiUnavailable) as raised):
        server.wait_until_healthy()
    assert "Prefect 临时服务启动失败" in str(raised.value)
    assert "temporary server exited" in str(raised.value)
    failure = failure_of(raised.value)
    assert failure is not None and failure.exit_code == EXIT_UNAVAILABLE
    assert failure.zh.startswith("Prefect 临时服务无法启动") and "PREFECT_API_URL" in failure.en
    assert server.process.poll() is not None


# -- the temporary server's answer when its database is busy ------------------------------------


class _BusyThenFree:
    """A Starlette-like application that answers 503 ``busy`` times, raising after each 503
    as Starlette's error middleware does, then 201 with the request's body; it rewrites the
    scope it is given, as Starlette's routing does."""

    def __init__(self, busy: int) -> None:
        self.busy = busy
        self.calls: list[tuple[str, bytes]] = []

    async def __call__(self, scope, receive, send) -> None:
        message = await receive()
        self.calls.append((scope["path"], message["body"]))
        scope["path"] = "/rewritten"
        if len(self.calls) <= self.busy:
            await send({"type": "http.response.start", "status": 503, "headers": []})
            await send({"type": "http.response.body", "body": b'{"exception_message": '
                        b'"Service Unavailable"}'})
            raise RuntimeError("database is locked")
        await send({"type": "http.response.start", "status": 201, "headers": []})
        await send({"type": "http.response.body", "body": b"created:", "more_body": True})
        await send({"type": "http.response.body", "body": message["body"]})


def _post(app, body: bytes):
    import asyncio

    import httpx

    async def posted():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://server") as client:
            return await client.post("/api/task_runs/", content=body)

    return asyncio.run(posted())


def test_a_request_answered_busy_is_answered_again_in_the_server(monkeypatch) -> None:
    monkeypatch.setattr(prefect_compat.RetriedWhenBusy, "PAUSES_S", (0.001, 0.002, 0.003))
    app = _BusyThenFree(busy=2)
    response = _post(prefect_compat.RetriedWhenBusy(app), b'{"name": "publish"}')
    assert response.status_code == 201
    assert response.content == b'created:{"name": "publish"}'
    # Each run saw the same request: its path as sent (not as the last run rewrote it), its
    # whole body.
    assert app.calls == [("/api/task_runs/", b'{"name": "publish"}')] * 3


def test_a_request_busy_every_time_reaches_the_client_as_busy(monkeypatch) -> None:
    monkeypatch.setattr(prefect_compat.RetriedWhenBusy, "PAUSES_S", (0.001, 0.002))
    app = _BusyThenFree(busy=10)
    response = _post(prefect_compat.RetriedWhenBusy(app), b"{}")
    # Prefect's client then retries it as it always has.
    assert response.status_code == 503
    assert response.json() == {"exception_message": "Service Unavailable"}
    assert len(app.calls) == 3


def test_any_other_answer_is_sent_as_it_is_given(monkeypatch) -> None:
    monkeypatch.setattr(prefect_compat.RetriedWhenBusy, "PAUSES_S", (0.001,))
    app = _BusyThenFree(busy=0)
    response = _post(prefect_compat.RetriedWhenBusy(app), b"x" * 100_000)
    assert response.status_code == 201 and response.content == b"created:" + b"x" * 100_000
    assert len(app.calls) == 1
