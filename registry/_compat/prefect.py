"""Prefect internals the commands' temporary server relies on (:mod:`registry.cli.prefect_api`).

Written for prefect >=3.9,<3.10 (:data:`SUPPORTED`), checked when used
(:func:`temporary_server_command`): how Prefect runs its own temporary server
(``SubprocessASGIServer._run_uvicorn_command`` in prefect 3.9):

- its server application's factory (:data:`SERVER_APP`), run by uvicorn on loopback with its
  lifespan;
- the environment it adds: no UI, and the private ``PREFECT__SERVER_EPHEMERAL`` and
  ``PREFECT__SERVER_FINAL``, which make the application run only the services an ephemeral
  server runs.

Nothing here imports Prefect: the command line and environment are built without loading its
server, which is the point.
"""

from __future__ import annotations

import sys

from registry._compat.versions import SupportedVersions

SUPPORTED = SupportedVersions("prefect", "3.9", "3.10", patches=__name__)

SERVER_APP = "prefect.server.api.server:create_app"
_TEMPORARY_SERVER_ENV = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                         "PREFECT__SERVER_FINAL": "1"}


def temporary_server_command(port: int) -> tuple[list[str], dict[str, str]]:
    """The command line that runs Prefect's temporary server on loopback ``port``, and the
    variables to add to its environment, as Prefect runs its own. Raises
    :class:`~registry._compat.versions.IncompatibleVersion` outside :data:`SUPPORTED`."""
    SUPPORTED.check()
    command = [sys.executable, "-m", "uvicorn", "--factory", SERVER_APP, "--host", "127.0.0.1",
               "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    return command, dict(_TEMPORARY_SERVER_ENV)
