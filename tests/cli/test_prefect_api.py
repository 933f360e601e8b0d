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
    monkeypatch.setattr(prefect_compat, "SERVER_APP", "registry_no_such_module:create_app")
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
