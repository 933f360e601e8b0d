"""A fault-injecting HTTP reverse proxy in front of the loopback S3 server, for clients the
botocore event hooks cannot reach (polars reads and writes Parquet through the Rust
object_store client).

It forwards each request to ``upstream`` and, for a seeded share of the requests that
``eligible`` selects, fails it instead:

- ``500`` / ``503``: an S3 error document (``InternalError``, ``SlowDown``), nothing forwarded;
- ``409``: ``ConditionalRequestConflict``, only for writes (PUT/POST), where S3 sends it;
- ``read-timeout``: the request is read, then held without an answer past the client's
  timeout, then the connection is dropped;
- ``reset-request``: the connection is reset (RST) part-way through the request;
- ``reset-response``: the request reaches the server, which acts on it, and the connection is
  reset part-way through the reply (a write that happened, with its answer lost).

It counts what it injected by kind and by HTTP method. Only loopback addresses are served or
targeted. Standard library only.
"""

from __future__ import annotations

import http.client
import ipaddress
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

KINDS = ("500", "503", "409", "read-timeout", "reset-request", "reset-response")
# Hop-by-hop headers (RFC 9110 section 7.6.1) are the proxy's own business on each leg.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code>'
    b"<Message>injected by the fault proxy</Message></Error>"
)
_CODES = {500: b"InternalError", 503: b"SlowDown", 409: b"ConditionalRequestConflict"}

Eligible = Callable[[str, str, http.client.HTTPMessage], bool]


def from_polars(method: str, path: str, headers: http.client.HTTPMessage) -> bool:
    """Selects the requests of polars' object-store client (boto3 signs as Boto3/Botocore)."""
    return headers.get("User-Agent", "").startswith("polars/")


def _loopback(host: str) -> bool:
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


class FaultProxy:
    """A reverse proxy to ``upstream`` (``http://127.0.0.1:PORT``) on a free loopback port.

    ``share`` of the eligible requests fail, with a kind drawn from ``kinds`` by a
    ``random.Random(seed)``; with ``permanent`` set (a status, such as 503), every eligible
    request fails with it. Kinds put in :attr:`next_faults` fail the next eligible requests,
    in that order, before either applies. ``eligible(method, path, headers)`` picks the
    requests that may fail (default: all). ``hold_s`` is how long a ``read-timeout`` holds
    the request; set it above the client's timeout. Use as a context manager, or
    :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        upstream: str,
        *,
        share: float = 0.0,
        seed: int = 0,
        kinds: tuple[str, ...] = KINDS,
        permanent: int | None = None,
        eligible: Eligible | None = None,
        hold_s: float = 3.0,
    ):
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not _loopback(parts.hostname):
            raise ValueError(f"the fault proxy only forwards to http:// on loopback: {upstream!r}")
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.upstream = (parts.hostname, parts.port or 80)
        self.share, self.kinds, self.permanent = share, kinds, permanent
        self.eligible = eligible or (lambda method, path, headers: True)
        self.hold_s = hold_s
        self.enabled = True
        self.next_faults: list[str] = []
        self.requests: Counter[str] = Counter()  # every request seen, by method
        self.eligible_requests: Counter[str] = Counter()  # those that could fail, by method
        self.injected: Counter[str] = Counter()  # faults, by kind
        self.injected_by_method: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())

    def _fault_for(self, method: str, path: str, headers: http.client.HTTPMessage) -> str | None:
        with self._lock:
            self.requests[method] += 1
            if not self.enabled or not self.eligible(method, path, headers):
                return None
            self.eligible_requests[method] += 1
            if self.next_faults:
                kind = self.next_faults.pop(0)
            elif self.permanent is not None:
                kind = str(self.permanent)
            elif self._rng.random() >= self.share:
                return None
            else:
                # A conflict only means something for a write.
                kinds = [k for k in self.kinds if k != "409" or method in ("PUT", "POST")]
                if not kinds:
                    return None
                kind = self._rng.choice(kinds)
            self.injected[kind] += 1
            self.injected_by_method[method] += 1
            return kind

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: object) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _reset(self) -> None:
                # SO_LINGER with a zero timeout makes close() send RST, not FIN.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True

            def _error(self, status: int) -> None:
                body = _ERROR % _CODES.get(status, b"InjectedFault")
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length"
                    }
                    if body or self.command in ("PUT", "POST"):
                        headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    resp = conn.getresponse()
                    return resp.status, resp.reason, resp.getheaders(), resp.read()
                finally:
                    conn.close()

            def _reply(
                self,
                status: int,
                reason: str,
                headers: list[tuple[str, str]],
                body: bytes,
                *,
                cut: bool,
            ) -> None:
                head = [f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")]
                for name, value in headers:
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        head.append(f"{name}: {value}\r\n".encode("latin-1"))
                # A HEAD reply announces the object's length and carries no body.
                length = next((v for k, v in headers if k.lower() == "content-length"), None)
                if self.command != "HEAD" or length is None:
                    length = str(len(body))
                head.append(f"Content-Length: {length}\r\n\r\n".encode("latin-1"))
                data = b"".join(head) + (b"" if self.command == "HEAD" else body)
                if cut:
                    # Half of the reply, then a reset: the server acted, the answer is lost.
                    self.connection.sendall(data[: max(1, len(data) // 2)])
                    self._reset()
                    return
                self.wfile.write(data)

            def _handle(self) -> None:
                kind = proxy._fault_for(self.command, self.path, self.headers)
                if kind == "reset-request":
                    # Read at most half of the body, then drop the connection.
                    declared = int(self.headers.get("Content-Length") or 0)
                    if declared:
                        self.rfile.read(declared // 2)
                    self._reset()
                    return
                body = self._body()
                if kind == "read-timeout":
                    proxy._closing.wait(proxy.hold_s)
                    self._reset()
                    return
                if kind in ("500", "503", "409") or (kind and kind.isdigit()):
                    self._error(int(kind))
                    return
                status, reason, headers, data = self._forward(body)
                self._reply(status, reason, headers, data, cut=kind == "reset-response")

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        return Handler


__all__ = ["KINDS", "FaultProxy", "from_polars"]
