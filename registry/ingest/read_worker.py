"""Read an upload in a worker process held to the configured time and memory limits.

A council's file is untrusted. Size checks (:class:`registry.ingest.tables.Limits`) refuse most
hostile files before they are read, but not every one: a small xlsx can unpack into a huge
grid, a reader library can loop or crash on a malformed file. So the ingest process does not
read an upload itself: a worker process reads it, with its data segment capped
(``RLIMIT_DATA``) and a wall-clock limit. A worker past either limit is stopped (SIGKILL, or
its allocation fails) and the file is refused whole with ``READ_TIME_LIMIT`` or
``READ_MEMORY_LIMIT``; a file the worker refuses for any other reason is refused with the
worker's code.

A file read within the limits comes back as Arrow IPC (polars' own string views) in an
in-memory file, which the ingest process maps and hands to polars without copying: the table
crosses the process boundary for a fraction of what reading the file again would cost.

Workers are started with ``python -m registry.ingest.read_worker_process`` (so this works
inside daemonic processes such as Dask workers, where multiprocessing may not start children)
and reused: one per concurrent reader, kept while their memory stays well under the limit. A
request is one JSON message with the upload as an in-memory file descriptor, over a Unix
socket pair; the reply is one JSON message, with the table's in-memory file when it was read.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import mmap
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Collection, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import polars as pl

from registry.ingest import rejections as rj
from registry.ingest.tables import FilledCells, Limits, SkippedNote, UploadTable

# A worker whose data segment ends a read above this share of its limit is not reused: the
# next file must get the whole limit (allocators keep some of what a read freed).
_REUSE_BELOW_SHARE = 0.5
_IDLE_PER_LIMIT = 2
# An orphaned worker (its ingest process was killed mid-read) ends itself this long after the
# read's own limit.
ORPHAN_GRACE_S = 10
# How a worker that ran out of memory ends, when it cannot reply: Rust's allocation failure,
# Python's, jemalloc or the runtime unable to map a thread's stack; SIGKILL is the kernel's.
_OUT_OF_MEMORY = ("memory allocation of", "MemoryError", "Cannot allocate memory",
                  "thread creation failed", "failed to spawn thread", "could not spawn threads",
                  "out of memory")
MESSAGE_BYTES = 256 * 1024  # requests and replies (a traceback is cut to fit)


class ReadFailed(RuntimeError):
    """The reader raised an unexpected exception in the worker (a bug, not a bad file)."""


def read(data: bytes, known_headers: Collection[str], limits: Limits) -> UploadTable:
    """Read ``data`` in a worker under ``limits.max_read_seconds`` and
    ``limits.max_read_memory_bytes``, as :func:`registry.ingest.readers.upload_table` reads it in
    process. Raises :class:`registry.ingest.rejections.FileRejected` when it was refused (including
    for time or memory), :class:`ReadFailed` when the reader failed unexpectedly."""
    assert limits.max_read_seconds and limits.max_read_memory_bytes
    request = {
        "known_headers": sorted(known_headers),
        "limits": {**asdict(limits), "max_read_seconds": None, "max_read_memory_bytes": None},
        "size": len(data),
    }
    worker = _POOL.take(limits.max_read_memory_bytes)
    reusable = False
    try:
        reply, table_fd = worker.ask(request, data, limits.max_read_seconds)
        reusable = reply.get("data_bytes", math.inf) < (
            limits.max_read_memory_bytes * _REUSE_BELOW_SHARE
        )
    finally:
        _POOL.give_back(worker, reusable=reusable)
    if table_fd is None:
        if "rejected" in reply:
            raise rj.FileRejected(reply["rejected"], reply.get("detail", ""))
        raise ReadFailed(f"reading the upload failed in the worker: {reply.get('error')}\n"
                         + reply.get("traceback", ""))
    return _upload_table(reply["table"], table_fd)


def _upload_table(fields: dict[str, Any], table_fd: int) -> UploadTable:
    """The worker's table: its rows mapped from the in-memory file (which the frame keeps
    mapped for as long as it lives), its other fields from the reply."""
    import pyarrow as pa

    try:
        mapped = mmap.mmap(table_fd, 0, prot=mmap.PROT_READ)
    finally:
        os.close(table_fd)
    rows = pl.from_arrow(pa.ipc.open_file(pa.py_buffer(mapped)).read_all(), rechunk=False)
    assert isinstance(rows, pl.DataFrame)
    notes = [SkippedNote(row, starts_with) for row, starts_with in fields.pop("notes")]
    filled = [FilledCells(*cells) for cells in fields.pop("filled")]
    return UploadTable(**fields, rows=rows, notes=notes, filled=filled)


def mebibytes(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


class _Worker:
    def __init__(self, memory_bytes: int):
        self.memory_bytes = memory_bytes
        # A file, not a pipe: nobody has to drain it, and its tail says why a worker died.
        self.stderr: IO[bytes] = tempfile.TemporaryFile(prefix="registry-read-worker-")  # noqa: SIM115
        # Requests and replies keep their boundaries; the upload travels as a file descriptor.
        self.channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        package_parent = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (package_parent, env.get("PYTHONPATH")) if p
        )
        # With backtraces on, a failed allocation can hang while printing one; it must abort.
        env["RUST_BACKTRACE"] = "0"
        with theirs:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "registry.ingest.read_worker_process", str(memory_bytes),
                 str(theirs.fileno())],
                stdin=subprocess.DEVNULL, stdout=self.stderr, stderr=self.stderr, env=env,
                pass_fds=[theirs.fileno()],
            )

    def ask(self, request: dict[str, Any], data: bytes, seconds: float
            ) -> tuple[dict[str, Any], int | None]:
        """The worker's reply and the table's in-memory file (None unless the file was read);
        a refusal when it ran out of time or memory or stopped."""
        with _in_memory_file(data) as fd:
            try:
                socket.send_fds(
                    self.channel, [json.dumps({**request, "seconds": seconds}).encode()], [fd]
                )
            except OSError:  # the worker is gone
                return self._stopped(), None
        deadline = time.monotonic() + seconds
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.kill()
                return {"rejected": rj.READ_TIME_LIMIT, "detail": f"{seconds:g} s",
                        "data_bytes": math.inf}, None
            ready, _, _ = select.select([self.channel], [], [], remaining)
            if ready:
                break
        try:
            reply, fds, _, _ = socket.recv_fds(self.channel, MESSAGE_BYTES, 1)
        except OSError:
            reply, fds = b"", []
        if not reply:
            for fd in fds:
                os.close(fd)
            return self._stopped(), None
        return json.loads(reply), (fds[0] if fds else None)

    def _stopped(self) -> dict[str, Any]:
        """Why the worker stopped without replying: out of memory, or the reader crashed."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.process.wait()
        self.stderr.seek(max(0, self.stderr.seek(0, os.SEEK_END) - 4096))
        tail = self.stderr.read().decode("utf-8", "replace")
        if code == -signal.SIGKILL or any(sign in tail for sign in _OUT_OF_MEMORY):
            return {"rejected": rj.READ_MEMORY_LIMIT, "detail": mebibytes(self.memory_bytes),
                    "data_bytes": math.inf}
        how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return {"rejected": rj.FILE_UNREADABLE, "detail": f"the reader stopped ({how})",
                "data_bytes": math.inf}

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Let the worker end (it stops when its channel closes)."""
        self.channel.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
        self.stderr.close()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.process.kill()
        self.process.wait()
        self.channel.close()
        self.stderr.close()


@contextlib.contextmanager
def _in_memory_file(data: bytes) -> Iterator[int]:
    """A descriptor of an anonymous file holding ``data``: nothing to clean up, whoever
    dies first."""
    # Linux only, as are the worker's RLIMIT_DATA cap and its /proc reading.
    fd = os.memfd_create("registry-upload", os.MFD_CLOEXEC)
    try:
        view, written = memoryview(data), 0
        while written < len(data):
            written += os.write(fd, view[written:])
        yield fd
    finally:
        os.close(fd)


class _Pool:
    """Idle workers by memory limit. A worker serves one read at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: dict[int, list[_Worker]] = {}
        self._pid = os.getpid()

    def take(self, memory_bytes: int) -> _Worker:
        with self._lock:
            if self._pid != os.getpid():  # a forked copy: the workers belong to the parent
                self._idle, self._pid = {}, os.getpid()
            idle = self._idle.setdefault(memory_bytes, [])
            while idle:
                worker = idle.pop()
                if worker.alive():
                    return worker
                worker.close()
        return _Worker(memory_bytes)

    def give_back(self, worker: _Worker, *, reusable: bool) -> None:
        with self._lock:
            idle = self._idle.setdefault(worker.memory_bytes, [])
            if reusable and worker.alive() and len(idle) < _IDLE_PER_LIMIT:
                idle.append(worker)
                return
        worker.close() if worker.alive() else worker.kill()

    def close(self) -> None:
        with self._lock:
            workers = [w for idle in self._idle.values() for w in idle]
            self._idle = {}
        for worker in workers:
            worker.close()


_POOL = _Pool()
atexit.register(_POOL.close)


def close_idle_workers() -> None:
    """End the idle workers; the next read starts a new one. For the end of an ingest run:
    an idle worker keeps the memory its last read left it (a few hundred MB after a large
    file), which whatever the process does next (publication, in ``registry run``) needs."""
    _POOL.close()
