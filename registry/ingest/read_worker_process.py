"""The reading worker process (:mod:`registry.ingest.read_worker` starts it with ``python -m``):
caps its own data segment, then reads each upload it is sent with the in-process readers and
replies with the table as Arrow IPC in an in-memory file, or with why the file was refused."""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import socket
import sys
import traceback
from typing import Any

import polars as pl

from registry.ingest import rejections as rj
from registry.ingest.read_worker import MESSAGE_BYTES, ORPHAN_GRACE_S, mebibytes
from registry.ingest.readers import read_here
from registry.ingest.tables import Limits


def _data_segment_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmData:"):
                return int(line.split()[1]) * 1024
    return 0


def _arrow_file(rows: Any) -> int:
    """A descriptor of an in-memory file holding ``rows`` (a polars frame) as Arrow IPC, with
    polars' string views, so that the reading side maps it without converting anything."""
    fd = os.memfd_create("registry-upload-table", os.MFD_CLOEXEC)
    try:
        rows.write_ipc(f"/proc/self/fd/{fd}", compat_level=pl.CompatLevel.newest())
    except BaseException:
        os.close(fd)
        raise
    return fd


def _serve(memory_bytes: int, channel_fd: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the ingest process decides when to stop
    channel = socket.socket(fileno=channel_fd)
    # Start polars' thread pool before the cap: its threads' stacks are the runtime's, not the
    # file's, and a pool that cannot start fails with an error that says nothing of memory.
    pl.DataFrame({"warm": [1, 2]}).select(pl.col("warm").sum())
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, cap))
    while True:
        message, fds, _, _ = socket.recv_fds(channel, MESSAGE_BYTES, 1)
        if not message:
            return  # the ingest process closed the channel (or died)
        request = json.loads(message)
        signal.alarm(math.ceil(request["seconds"]) + ORPHAN_GRACE_S)
        reply: dict[str, Any]
        table_fd = None
        try:
            data = os.pread(fds[0], request["size"], 0)
            os.close(fds[0])
            table = read_here(data, request["known_headers"], Limits(**request["limits"]))
            data = b""
            table_fd = _arrow_file(table.rows)
            reply = {"table": {
                "format": table.format, "header": table.header, "encoding": table.encoding,
                "sheet": table.sheet, "notes": [[n.row, n.starts_with] for n in table.notes],
                "filled": [[f.kind, f.column, f.first_row, f.last_row] for f in table.filled],
            }}
            del table
        except rj.FileRejected as refused:
            reply = {"rejected": refused.code, "detail": refused.detail}
        except MemoryError:
            reply = {"rejected": rj.READ_MEMORY_LIMIT, "detail": mebibytes(memory_bytes)}
        except Exception as exc:  # a reader bug: reported, never taken for a bad file
            reply = {"error": f"{type(exc).__name__}: {exc}",
                     "traceback": traceback.format_exc(limit=20)[-MESSAGE_BYTES // 2:]}
        signal.alarm(0)
        data = b""
        reply["data_bytes"] = _data_segment_bytes()
        message = json.dumps(reply, ensure_ascii=False).encode()
        if table_fd is None:
            channel.send(message)
        else:
            socket.send_fds(channel, [message], [table_fd])
            os.close(table_fd)
        if reply.get("rejected") == rj.READ_MEMORY_LIMIT:
            return  # after a MemoryError the process is not to be trusted again


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
