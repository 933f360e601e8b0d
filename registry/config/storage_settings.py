"""Storage settings: the storage root and how to reach S3 (endpoint, credentials, timeouts).

These are all the snapshot reader needs, and all it reads from the environment: apps install
the reader without the pipeline's dependencies, pydantic-settings among them, so
:func:`load_storage_settings` reads the variables with pydantic alone. The pipeline's
:class:`~registry.config.settings.Settings` inherits these fields and reads the same variables
through pydantic-settings: each variable is named once, here (docs/architecture.md §1.2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr

# A field without an alias is read from REGISTRY_{FIELD}; the AWS ones from their standard names.
ENV_PREFIX = "REGISTRY_"


class StorageSettings(BaseModel):
    """Where storage is and how to reach it. The standard AWS variables configure S3, so the
    same credentials work for boto3, polars and the AWS CLI."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    storage_uri: str = Field(
        default="file://./registry-data",
        description="Root of all storage: file://PATH (embedded default) or s3://bucket/prefix.",
    )

    # S3: the standard AWS variables, read without the REGISTRY_ prefix.
    aws_endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
    )
    aws_access_key_id: str | None = Field(default=None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias="AWS_SECRET_ACCESS_KEY"
    )
    aws_session_token: SecretStr | None = Field(default=None, validation_alias="AWS_SESSION_TOKEN")
    aws_region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    s3_addressing_style: Literal["path", "virtual", "auto"] = Field(
        default="path",
        description="Path-style works on every S3-compatible store (MinIO, Ceph RGW, moto).",
    )
    s3_max_attempts: int = Field(default=6, ge=1, le=20)
    s3_connect_timeout_s: float = Field(default=5.0, gt=0)
    s3_read_timeout_s: float = Field(default=60.0, gt=0)


def env_names(field: str) -> tuple[str, ...]:
    """The variables that set ``field`` of :class:`StorageSettings`, the first one set winning:
    its alias choices, else ``REGISTRY_{FIELD}``. Case does not matter, as for pydantic-settings."""
    alias = StorageSettings.model_fields[field].validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices)
    if isinstance(alias, str):
        return (alias,)
    return (f"{ENV_PREFIX}{field}".upper(),)


def load_storage_settings(environ: Mapping[str, str] | None = None) -> StorageSettings:
    """Storage settings from ``environ`` (default: the process environment), read as
    :class:`~registry.config.settings.Settings` reads them."""
    env = {name.upper(): value for name, value in (os.environ if environ is None else environ
                                                  ).items()}
    values: dict[str, Any] = {}
    for field, info in StorageSettings.model_fields.items():
        for name in env_names(field):
            if name.upper() in env:
                # Aliased fields validate under the alias, the others under their own name.
                values[name if info.validation_alias else field] = env[name.upper()]
                break
    return StorageSettings.model_validate(values)
