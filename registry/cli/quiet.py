"""What a `registry` command prints besides its results: little by default, the logs with -v.

For the flows the registry's commands run (ingest, publish, run, demo), by default:

- no telemetry (:data:`NO_TELEMETRY`, set when the command line starts): neither Prefect's
  temporary server nor its client reports usage. Great Expectations 1.24 has no usage
  statistics to turn off (its analytics client is gone; the pipeline extra pins <1.25).
- Prefect's console handler, which the root logger writes through once Prefect is imported,
  shows warnings and errors only (:data:`CONSOLE_LEVEL`): no INFO line of a run, of Prefect's
  server start, or of Great Expectations ("Created temporary directory ... for ephemeral docs
  site", once per validation: GX sets that logger to INFO itself, so only the handler's level
  can hold it back). A run's logs still reach the Prefect server through Prefect's API
  handler, which this leaves alone.
- on Prefect's temporary server (PREFECT_API_URL unset), Prefect's warning that the
  ``registry-publish`` concurrency limit does not exist is dropped: nobody set that server up,
  and its limit could not be created before the server is. The publication protocol itself
  refuses a second writer.
- the S3 client's retries of transient failures are not shown; when they run out, the command
  fails with one line (registry.cli.errors).

``-v`` shows all of them. A value the environment sets for :data:`CONSOLE_LEVEL` wins over the
default.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

# Prefect reads these when it loads its settings, after the command line has started.
NO_TELEMETRY = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",  # Prefect's client telemetry honours this convention
}
# Any entry of Prefect's logging.yml can be set as PREFECT_LOGGING_{PATH}; Prefect reads it when
# it sets up logging on import.
CONSOLE_LEVEL = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"
_QUIET_CONSOLE = "WARNING"
_VERBOSE_CONSOLE = "INFO"

# Prefect 3's words for a concurrency limit the server does not have (prefect.concurrency).
_MISSING_LIMIT = "do not exist - skipping acquisition"


class _NoMissingLimitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.WARNING and _MISSING_LIMIT in record.getMessage())


class _ErrorsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


@contextmanager
def command_logging(*, verbose: bool) -> Iterator[None]:
    """Quiet (or with ``verbose``, full) logging for the duration of one command; the loggers
    and the environment are as they were afterwards."""
    before = os.environ.get(CONSOLE_LEVEL)
    if verbose:
        os.environ[CONSOLE_LEVEL] = _VERBOSE_CONSOLE
    else:
        os.environ.setdefault(CONSOLE_LEVEL, _QUIET_CONSOLE)
    held_back: list[tuple[logging.Logger, logging.Filter]] = []
    if not verbose:
        held_back.append((logging.getLogger("registry.storage.s3"), _ErrorsOnly()))
        if not os.environ.get("PREFECT_API_URL"):
            # Prefect's run loggers: a flow run's records are made by this logger.
            held_back.append((logging.getLogger("prefect.flow_runs"), _NoMissingLimitWarning()))
    for logger, held in held_back:
        logger.addFilter(held)
    try:
        yield
    finally:
        for logger, held in held_back:
            logger.removeFilter(held)
        if before is None:
            os.environ.pop(CONSOLE_LEVEL, None)
        else:
            os.environ[CONSOLE_LEVEL] = before
