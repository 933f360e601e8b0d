"""OpenCC internals the name matching key relies on (:mod:`registry.ingest.normalize`).

Written for the ``opencc`` Python package >=1.4,<1.5 (:data:`SUPPORTED`), checked when each is
used:

- :func:`c_converter`: OpenCC's C API (``opencc.h``), which the package's extension module
  exports, called with ctypes. A ctypes call releases the GIL, so other threads keep working
  while a million names convert (the Python binding holds the GIL for the whole call);
- :func:`dictionary_values`: the values of OpenCC's own ``.ocd2`` dictionaries, found by the
  layout of the file (the package has no API to read them);
- :data:`DATA_DIR`: where the package keeps its configurations and dictionaries.
"""

from __future__ import annotations

import ctypes
import queue
import struct
from collections.abc import Callable
from pathlib import Path

import opencc

from registry._compat.versions import SupportedVersions

try:
    from opencc.clib import opencc_clib
except ImportError:  # a build of the package without its extension module
    opencc_clib = None

SUPPORTED = SupportedVersions("opencc", "1.4", "1.5", patches=__name__)
DATA_DIR = Path(opencc.__file__).resolve().parent / "clib" / "share" / "opencc"


def c_converter(config: str) -> Callable[[bytes], bytes] | None:
    """OpenCC's conversion ``config`` (a file of :data:`DATA_DIR`, e.g. ``t2s.json``) over
    UTF-8 bytes, through its C API; None when the extension module does not export it. Raises
    :class:`~registry._compat.versions.IncompatibleVersion` outside :data:`SUPPORTED`."""
    SUPPORTED.check()
    if opencc_clib is None:
        return None
    try:
        lib = ctypes.CDLL(opencc_clib.__file__)
        open_, convert = lib.opencc_open, lib.opencc_convert_utf8
        free, error = lib.opencc_convert_utf8_free, lib.opencc_error
    except (OSError, AttributeError):
        return None
    open_.argtypes, open_.restype = [ctypes.c_char_p], ctypes.c_void_p
    convert.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    convert.restype = ctypes.c_void_p
    free.argtypes, free.restype = [ctypes.c_void_p], None
    error.argtypes, error.restype = [], ctypes.c_char_p
    path = str(DATA_DIR / config).encode()
    # One converter per concurrent call (converters are not documented as thread-safe);
    # kept for the life of the process.
    idle: queue.SimpleQueue[int] = queue.SimpleQueue()

    def converted(text: bytes) -> bytes:
        try:
            handle = idle.get_nowait()
        except queue.Empty:
            handle = open_(path)
            if handle in (None, ctypes.c_void_p(-1).value):
                raise RuntimeError(f"OpenCC: {error().decode(errors='replace')}") from None
        try:
            out = convert(handle, text, len(text))
            if not out:
                raise RuntimeError(f"OpenCC: {error().decode(errors='replace')}")
            try:
                return ctypes.string_at(out)
            finally:
                free(out)
        finally:
            idle.put(handle)

    return converted


def dictionary_values(name: str) -> list[list[str]] | None:
    """The values of each item of the dictionary ``name`` of :data:`DATA_DIR` (e.g.
    ``TSCharacters.ocd2``), in file order; None when it cannot be read. Raises
    :class:`~registry._compat.versions.IncompatibleVersion` outside :data:`SUPPORTED`."""
    SUPPORTED.check()
    try:
        data = (DATA_DIR / name).read_bytes()
    except OSError:
        return None
    return ocd2_values(data)


def ocd2_values(data: bytes) -> list[list[str]] | None:
    """The values of each item of the ``.ocd2`` dictionary ``data``, or None.

    An .ocd2 file is a header, a marisa trie of the keys, then the values: u32 item count,
    u32 buffer length, the NUL-separated UTF-8 values, and per item a u16 value count and a
    u16 length per value. Only the values are needed; they are found by that layout."""
    for at in range(len(data) - 8, 0, -1):
        count, length = struct.unpack_from("<II", data, at)
        table = at + 8 + length
        if not (0 < count <= length and table + 4 * count <= len(data)):
            continue
        if data[table - 1] != 0 or not 0 < data[table] <= 64:  # a NUL ends the last value
            continue
        try:
            lengths, pos = [], table
            for _ in range(count):
                (n,) = struct.unpack_from("<H", data, pos)
                lengths.append(struct.unpack_from(f"<{n}H", data, pos + 2))
                pos += 2 + 2 * n
        except struct.error:
            continue
        if pos != len(data) or sum(map(sum, lengths)) != length:
            continue
        values = data[at + 8 : table].split(b"\0")[:-1]
        if len(values) != sum(map(len, lengths)):
            continue
        out, i = [], 0
        for item in lengths:
            out.append([v.decode("utf-8") for v in values[i : i + len(item)]])
            i += len(item)
        return out
    return None
