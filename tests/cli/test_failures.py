"""How a `registry` command fails: exit 64 for a usage error, one bilingual line and a sysexits
code for a configuration, credential or network failure, a JSON document with --json, and the
traceback only with --debug."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from typer.testing import CliRunner

from registry.cli import app
from registry.cli.errors import EXIT_CONFIG, EXIT_NOPERM, EXIT_UNAVAILABLE, EXIT_USAGE
from registry.config.settings import PROJECT_ROOT

runner = CliRunner()
COUNCIL_FILE = str(PROJECT_ROOT / "tests" / "fixtures" / "merchants_js_bom.csv")


def assert_one_line(stderr: str, *, naming: str) -> None:
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("registry: ") and naming in lines[0]
    # Chinese first, then English.
    assert any("\u4e00" <= ch <= "\u9fff" for ch in lines[0].split(" / ")[0])


def test_check_of_an_unknown_region_with_json_prints_a_json_usage_error_and_exits_64():
    result = runner.invoke(app, ["check", COUNCIL_FILE, "--region", "XX",
                                 "--dataset", "merchants", "--json"])
    assert result.exit_code == EXIT_USAGE, result.output
    doc = json.loads(result.stdout)
    assert doc["error"]["code"] == "USAGE"
    assert "XX" in doc["error"]["message_en"] and doc["error"]["message_zh"]
    assert (doc["file"], doc["region"], doc["dataset"]) == (COUNCIL_FILE, "XX", "merchants")


def test_a_missing_option_is_a_usage_error_too_json_or_not():
    as_json = runner.invoke(app, ["check", COUNCIL_FILE, "--dataset", "merchants", "--json"])
    assert as_json.exit_code == EXIT_USAGE
    assert "--region" in json.loads(as_json.stdout)["error"]["message_en"]
    plain = runner.invoke(app, ["check", COUNCIL_FILE, "--dataset", "merchants"])
    assert plain.exit_code == EXIT_USAGE and plain.stdout == ""
    assert_one_line(plain.stderr, naming="--region")


def test_an_unknown_command_exits_64():
    result = runner.invoke(app, ["chekc"])
    assert result.exit_code == EXIT_USAGE
    assert_one_line(result.stderr, naming="chekc")


def test_a_bad_storage_uri_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv("REGISTRY_STORAGE_URI", "bogus://x")
    result = runner.invoke(app, ["snapshots"])
    assert result.exit_code == EXIT_CONFIG
    assert_one_line(result.stderr, naming="REGISTRY_STORAGE_URI")
    as_json = runner.invoke(app, ["snapshots", "--json"])
    assert as_json.exit_code == EXIT_CONFIG
    assert json.loads(as_json.stdout)["error"]["code"] == "CONFIG"


def test_debug_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("REGISTRY_STORAGE_URI", "bogus://x")
    result = runner.invoke(app, ["--debug", "snapshots"])
    assert result.exit_code == EXIT_CONFIG
    assert "Traceback" in result.stderr and "StorageMisconfigured" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("registry: ")


def test_s3_without_credentials_is_one_line_naming_them(monkeypatch, moto_endpoint, s3_bucket,
                                                        tmp_path):
    monkeypatch.setenv("REGISTRY_STORAGE_URI", f"s3://{s3_bucket}")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    # No credentials from the developer's AWS files either.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    result = runner.invoke(app, ["batches", "list", "--json"])
    assert result.exit_code == EXIT_NOPERM
    assert json.loads(result.stdout)["error"]["code"] == "CREDENTIALS"
    assert_one_line(result.stderr, naming="AWS_ACCESS_KEY_ID")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_endpoint_is_one_line_in_a_real_process(tmp_path):
    # A process of its own: the storage retries' log lines would go to its stderr.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REGISTRY_"))}
    env.update(REGISTRY_STORAGE_URI="s3://bucket", REGISTRY_S3_MAX_ATTEMPTS="2",
               AWS_ENDPOINT_URL=f"http://127.0.0.1:{_closed_port()}",
               AWS_ACCESS_KEY_ID="key", AWS_SECRET_ACCESS_KEY="secret")
    result = subprocess.run([sys.executable, "-m", "registry", "snapshots"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    assert_one_line(result.stderr, naming="AWS_ENDPOINT_URL")
    assert "failed after 2 attempts" in result.stderr


def test_registry_debug_in_the_environment_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("REGISTRY_STORAGE_URI", "bogus://x")
    monkeypatch.setenv("REGISTRY_DEBUG", "1")
    result = runner.invoke(app, ["snapshots"])
    assert result.exit_code == EXIT_CONFIG and "Traceback" in result.stderr
