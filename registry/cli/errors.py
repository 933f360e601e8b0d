"""How a `registry` command fails: its exit codes, and the one line a person reads.

Exit codes (docs/operations.md): 0, 1 and 2 are a command's own results (``check``: all rows
accepted, some rejected, the file rejected); the others follow sysexits.h. A usage error exits
:data:`EXIT_USAGE` with its message. A failure of the configuration, the credentials or a
server the registry needs exits :data:`EXIT_CONFIG`, :data:`EXIT_NOPERM` or
:data:`EXIT_UNAVAILABLE` with one line, in Chinese then English, naming what to fix: no
traceback unless ``--debug`` (or ``REGISTRY_DEBUG=1``). With ``--json`` on the command line
the failure is also printed as a JSON document on stdout::

    {"error": {"code": "USAGE" | "CONFIG" | "CREDENTIALS" | "UNAVAILABLE",
               "message_zh": "...", "message_en": "..."}}

Every such line is written here, in :func:`failure_of`. Anything else is a bug in the
registry, and keeps its traceback.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import typer

EXIT_USAGE = 64  # EX_USAGE: the command line is wrong
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: storage or the Prefect server cannot be reached
EXIT_NOPERM = 77  # EX_NOPERM: credentials missing or refused
EXIT_CONFIG = 78  # EX_CONFIG: a setting is wrong (REGISTRY_STORAGE_URI, a REGISTRY_* value)

# The settings classes whose validation errors are configuration errors (pydantic names a
# ValidationError after the model that raised it).
_SETTINGS_MODELS = frozenset({"Settings", "StorageSettings"})
# Values of a command's options that a JSON usage error repeats, where they were parsed.
_ECHOED_PARAMS = ("file", "region", "dataset")


class UsageProblem(typer.BadParameter):
    """A usage error told in both languages, e.g. an unknown region: the command exits
    :data:`EXIT_USAGE` with ``zh`` and ``en`` (and with ``--json``, a JSON document)."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(f"{zh} / {en}")
        self.zh = zh
        self.en = en

    def format_message(self) -> str:
        return f"{self.zh}\n{self.en}"


@dataclass(frozen=True)
class Failure:
    """What a command that failed tells: a stable code, the exit code, what to fix in both
    languages, and the failure's own ``detail`` (the location and cause, as raised)."""

    code: str
    exit_code: int
    zh: str
    en: str
    detail: str = ""

    def line(self) -> str:
        return f"registry: {self.zh} / {self.en}" + (f": {self.detail}" if self.detail else "")

    def document(self, echoed: dict[str, Any] | None = None) -> dict[str, Any]:
        """The JSON document of the failure, after the command's ``echoed`` option values."""
        error = {"code": self.code,
                 "message_zh": self.zh + (f"：{self.detail}" if self.detail else ""),
                 "message_en": self.en + (f": {self.detail}" if self.detail else "")}
        return {**(echoed or {}), "error": error}


def failure_of(exc: BaseException) -> Failure | None:
    """The failure ``exc`` means to a person, or None for a bug (which keeps its traceback).
    ``exc`` or any exception it was raised from counts: Prefect and polars wrap the causes."""
    if isinstance(exc, _usage_error()):
        return _usage_failure(exc)
    for cause in _chain(exc):
        failure = _storage_failure(cause) or _settings_failure(cause) or _prefect_failure(cause)
        if failure is not None:
            return failure
    return None


def echoed_params(exc: BaseException) -> dict[str, Any]:
    """The file, region and dataset of the command a usage error stopped, as far as they were
    parsed, for its JSON document."""
    ctx = getattr(exc, "ctx", None)
    params = ctx.params if ctx is not None else {}
    return {name: str(params[name]) for name in _ECHOED_PARAMS if params.get(name) is not None}


def _usage_error() -> type[Exception]:
    # click's UsageError, the base of every usage error: typer exports its BadParameter
    # subclass only (from typer 0.2x on, both are typer's own copy of click).
    return typer.BadParameter.__mro__[1]


def click_exception() -> type[Any]:
    """click's ClickException, the base of the errors click shows and exits on itself (a usage
    error, a file it could not open)."""
    return _usage_error().__mro__[1]


def _usage_failure(exc: BaseException) -> Failure:
    if isinstance(exc, UsageProblem):
        return Failure("USAGE", EXIT_USAGE, exc.zh, exc.en)
    ctx = getattr(exc, "ctx", None)
    see = f"{ctx.command_path if ctx else 'registry'} --help"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    return Failure("USAGE", EXIT_USAGE, f"命令用法有误，用法见 {see}",
                   f"usage error, see {see}", message)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _storage_failure(exc: BaseException) -> Failure | None:
    # Imported here: storage brings polars and boto3, which `registry --help` does without.
    from registry.storage import (
        CredentialsMissing,
        PermissionDenied,
        StorageMisconfigured,
        StorageUnavailable,
    )

    if isinstance(exc, StorageMisconfigured):
        return Failure(
            "CONFIG", EXIT_CONFIG,
            "存储配置有误，请检查 REGISTRY_STORAGE_URI（file://路径 或 s3://存储桶/前缀）",
            "storage is misconfigured, check REGISTRY_STORAGE_URI (file://PATH or "
            "s3://bucket/prefix)", str(exc))
    if isinstance(exc, CredentialsMissing):
        return Failure(
            "CREDENTIALS", EXIT_NOPERM,
            "没有 S3 凭据，请设置 AWS_ACCESS_KEY_ID 和 AWS_SECRET_ACCESS_KEY",
            "no S3 credentials, set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", str(exc))
    if isinstance(exc, PermissionDenied):
        return Failure(
            "CREDENTIALS", EXIT_NOPERM,
            "存储拒绝访问，请检查 AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY 与存储桶策略",
            "the store refused access, check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and "
            "the bucket policy", str(exc))
    if isinstance(exc, StorageUnavailable):
        return Failure(
            "UNAVAILABLE", EXIT_UNAVAILABLE,
            "无法连接存储，请检查 AWS_ENDPOINT_URL 与网络",
            "storage cannot be reached, check AWS_ENDPOINT_URL and the network", str(exc))
    return None


def _settings_failure(exc: BaseException) -> Failure | None:
    # pydantic is imported by whoever raised its error; a command that never loaded settings
    # has none to fail.
    if getattr(exc, "title", None) not in _SETTINGS_MODELS or not hasattr(exc, "errors"):
        return None
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors()
    )
    return Failure("CONFIG", EXIT_CONFIG, "配置有误，请检查这些设置（环境变量或 .env）",
                   "invalid configuration, check these settings (environment or .env)",
                   problems)


def _prefect_failure(exc: BaseException) -> Failure | None:
    from registry.cli.prefect_api import PrefectApiUnavailable

    if isinstance(exc, PrefectApiUnavailable):
        return Failure(
            "UNAVAILABLE", EXIT_UNAVAILABLE,
            "Prefect 临时服务无法启动，请设置 PREFECT_API_URL 指向运行中的服务",
            "Prefect's temporary server could not start, set PREFECT_API_URL to a running "
            "server", str(exc))
    # httpx is Prefect's HTTP client; a connect error, timeout or unsupported URL is a server
    # out of reach. Checked by name so that commands without Prefect never import httpx.
    if not any(cls.__module__.startswith("httpx") and cls.__name__ == "TransportError"
               for cls in type(exc).__mro__):
        return None
    cause = f"{type(exc).__name__}: {exc}"
    url = os.environ.get("PREFECT_API_URL")
    if not url:
        return Failure(
            "UNAVAILABLE", EXIT_UNAVAILABLE,
            "Prefect 临时服务无法访问，请设置 PREFECT_API_URL 指向运行中的服务",
            "Prefect's temporary server cannot be reached, set PREFECT_API_URL to a running "
            "server", cause)
    return Failure(
        "UNAVAILABLE", EXIT_UNAVAILABLE,
        f"无法连接 Prefect 服务 {url}，请检查 PREFECT_API_URL 与该服务是否运行",
        f"the Prefect server at {url} cannot be reached, check PREFECT_API_URL and that the "
        "server runs", cause)
