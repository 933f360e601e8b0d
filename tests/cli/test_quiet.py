"""Quiet by default: no telemetry from the flows a command runs, only warnings and errors on
Prefect's console, no retries or missing-limit warnings; `-v` brings the logs back. (The demo,
end to end: tests/demo/test_demo.py checks its stderr.)"""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import sys

import prefect.concurrency._asyncio
from prefect.logging.configuration import DEFAULT_LOGGING_SETTINGS_PATH, load_logging_config

from registry.cli import quiet
from registry.cli.quiet import CONSOLE_LEVEL, NO_TELEMETRY, command_logging

RETRY = "list s3://b/k: transient failure (EndpointConnectionError), retry 1/5"
MISSING_LIMIT = "Concurrency limits ['registry-publish'] do not exist - skipping acquisition."


def test_the_command_line_turns_telemetry_off_unless_the_environment_says_otherwise():
    probe = ("import json, os, registry.cli\n"
             f"print(json.dumps({{k: os.environ.get(k) for k in {sorted(NO_TELEMETRY)!r}}}))")
    env = {k: v for k, v in os.environ.items() if k not in NO_TELEMETRY}
    default = subprocess.run([sys.executable, "-c", probe], env=env, check=True,
                             capture_output=True, text=True)
    assert json.loads(default.stdout) == {"DO_NOT_TRACK": "1",
                                          "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    chosen = subprocess.run([sys.executable, "-c", probe], env={**env, "DO_NOT_TRACK": "0"},
                            check=True, capture_output=True, text=True)
    assert json.loads(chosen.stdout)["DO_NOT_TRACK"] == "0"


def _console_level() -> object:
    # What Prefect's console handler gets when Prefect sets up logging now.
    return load_logging_config(DEFAULT_LOGGING_SETTINGS_PATH)["handlers"]["console"]["level"]


def test_prefect_console_shows_warnings_by_default_and_everything_with_verbose(monkeypatch):
    monkeypatch.delenv(CONSOLE_LEVEL, raising=False)
    with command_logging(verbose=False):
        assert _console_level() == "WARNING"
    with command_logging(verbose=True):
        assert _console_level() == "INFO"
    assert CONSOLE_LEVEL not in os.environ
    monkeypatch.setenv(CONSOLE_LEVEL, "DEBUG")  # the environment's choice wins
    with command_logging(verbose=False):
        assert _console_level() == "DEBUG"


def test_retries_and_the_temporary_servers_missing_limit_are_held_back_unless_verbose(
        caplog, monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    caplog.set_level(logging.INFO)
    retries, runs = logging.getLogger("registry.storage.s3"), logging.getLogger(
        "prefect.flow_runs")
    with command_logging(verbose=False):
        retries.warning(RETRY)
        runs.warning(MISSING_LIMIT)
        retries.error("list s3://b/k failed after 6 attempts")
        runs.warning("Task run crashed")
    assert [r.getMessage() for r in caplog.records] == [
        "list s3://b/k failed after 6 attempts", "Task run crashed"]
    caplog.clear()
    with command_logging(verbose=True):
        retries.warning(RETRY)
        runs.warning(MISSING_LIMIT)
    assert len(caplog.records) == 2
    caplog.clear()
    retries.warning(RETRY)  # outside a command, as before
    assert len(caplog.records) == 1


def test_the_missing_limit_warning_is_kept_on_a_real_server(caplog, monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    with command_logging(verbose=False):
        logging.getLogger("prefect.flow_runs").warning(MISSING_LIMIT)
    assert [r.getMessage() for r in caplog.records] == [MISSING_LIMIT]


def test_prefect_still_words_the_missing_limit_as_the_filter_expects():
    assert quiet._MISSING_LIMIT in inspect.getsource(prefect.concurrency._asyncio)
