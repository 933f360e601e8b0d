"""The memory pool Arrow allocates from in the registry's ingest and publication.

pyarrow's default pool on Linux is mimalloc. The registry gate hands Great Expectations Arrow-
backed pandas frames, and each row condition takes its rows of every column: on tier M's
791,036 merchants, 210 takes and 1.24 GB of new Arrow buffers per run. The first such run in
a process (its text columns joined into one chunk, as the gate hands them) took 4.4-4.8 s with
mimalloc and 2.8-2.9 s with jemalloc (peak RSS 1.97 against 1.83 GB); a second run in the same
process 2.3-2.5 s against 2.8 s. A publication runs the gate once per USCC range, so the first
run is the one that counts.

:func:`use_jemalloc` makes jemalloc pyarrow's default pool, once per process, unless the
operator chose one (``ARROW_DEFAULT_MEMORY_POOL``, which Arrow itself reads) or this pyarrow
was built without it. Buffers keep the pool they were allocated from, so switching while
other threads allocate is safe. Polars allocates with its own allocator and is unaffected.
"""

from __future__ import annotations

import functools
import logging
import os
import threading

log = logging.getLogger(__name__)

# Arrow's own setting: when set, the operator's pool stands.
POOL_ENV = "ARROW_DEFAULT_MEMORY_POOL"

# Uploads are ingested in threads: the first of them switches the pool, the others wait.
_SWITCHING = threading.Lock()


def use_jemalloc() -> None:
    """Make jemalloc pyarrow's default memory pool, once per process (module docstring);
    called at the start of an upload's ingest and of a publication."""
    with _SWITCHING:
        _use_jemalloc()


@functools.cache
def _use_jemalloc() -> None:
    if os.environ.get(POOL_ENV):
        return
    import pyarrow as pa

    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:
        log.debug("pyarrow was built without jemalloc: keeping %s",
                  pa.default_memory_pool().backend_name)
        return
    pa.set_memory_pool(pool)
