"""The memory pool the registry's ingest and publication allocate Arrow buffers from
(registry.allocator). Each case runs in a process of its own: the pool is the process's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SHOW_POOL = """
import pyarrow as pa
from registry.allocator import use_jemalloc
before = pa.default_memory_pool().backend_name
use_jemalloc()
use_jemalloc()
print(before, pa.default_memory_pool().backend_name)
"""


def _pools(**env: str) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, "-c", SHOW_POOL], env={**environment, **env},
                          capture_output=True, text=True, check=True)
    return done.stdout.split()


def _has_jemalloc() -> bool:
    import pyarrow as pa

    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


@pytest.mark.skipif(not _has_jemalloc(), reason="this pyarrow was built without jemalloc")
def test_the_registry_allocates_arrow_buffers_from_jemalloc() -> None:
    before, after = _pools()
    assert before != "jemalloc" and after == "jemalloc"


def test_a_pool_the_operator_chose_stands() -> None:
    assert _pools(ARROW_DEFAULT_MEMORY_POOL="system") == ["system", "system"]


ENTRY = """
import sys
import pyarrow as pa
from registry.config.settings import Settings
from registry.storage import LocalStorage
storage = LocalStorage(sys.argv[2])
settings = Settings(_env_file=None, storage_uri="file://" + sys.argv[2])
try:
    if sys.argv[1] == "ingest":
        from registry.ingest.pipeline import ingest_object
        ingest_object(storage, settings, "landing/SH/merchants/none.csv")
    else:
        from registry.publish import publish_snapshot
        publish_snapshot(storage, settings)
except Exception as exc:
    print(type(exc).__name__, file=sys.stderr)
print(pa.default_memory_pool().backend_name)
"""


@pytest.mark.skipif(not _has_jemalloc(), reason="this pyarrow was built without jemalloc")
@pytest.mark.parametrize("entry", ["ingest", "publish"])
def test_an_upload_s_ingest_and_a_publication_allocate_from_jemalloc(entry, tmp_path) -> None:
    """Even on an empty store, where each stops early: they switch before anything else."""
    environment = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, "-c", ENTRY, entry, str(tmp_path)], env=environment,
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["jemalloc"], done.stderr
