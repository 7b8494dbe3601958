"""A fault-injecting HTTP proxy for an S3 endpoint on loopback (standard library only).

Every request is forwarded to the upstream endpoint, except that, counting requests in arrival
order, every ``fail_every``-th one fails: alternately with ``503 SlowDown`` (S3's throttling
reply) and with a connection reset before any response; every ``delay_every``-th one is held
back ``delay_s`` first. Paths listed in ``deny`` always get that permanent status (403/404) and
are never forwarded. Counts per path let a test see what was retried.
"""

from __future__ import annotations

import http.client
import itertools
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_ERROR_CODES = {403: "AccessDenied", 404: "NoSuchKey", 503: "SlowDown"}
# Hop-by-hop headers are the proxy's own business, never forwarded.
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


def _s3_error(status: int) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{_ERROR_CODES[status]}</Code><Message>injected by the test proxy"
        "</Message><RequestId>fault</RequestId></Error>"
    ).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Clients open many connections at once; a full accept queue would refuse some of them.
    request_queue_size = 256


class FaultProxy:
    """Start with ``with FaultProxy(upstream, ...) as proxy:``; ``proxy.url`` is its endpoint."""

    def __init__(
        self,
        upstream: str,
        *,
        fail_every: int = 0,
        delay_every: int = 0,
        delay_s: float = 0.2,
        deny: dict[str, int] | None = None,
    ) -> None:
        self.upstream = urlsplit(upstream).netloc
        self.fail_every, self.delay_every, self.delay_s = fail_every, delay_every, delay_s
        self.deny = dict(deny or {})
        self.requests: Counter[str] = Counter()  # "METHOD /path" -> count
        self.injected: Counter[str] = Counter()  # fault kind -> count
        self._count = itertools.count(1)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _decide(self, method: str, path: str) -> tuple[int, str | None]:
        """This request's number and its fault (None: forward it)."""
        with self._lock:
            number = next(self._count)
            self.requests[f"{method} {path}"] += 1
            if path in self.deny:
                fault = f"status {self.deny[path]}"
            elif self.fail_every and number % self.fail_every == 0:
                fault = "slowdown" if (number // self.fail_every) % 2 else "reset"
            elif self.delay_every and number % self.delay_every == 0:
                fault = "delay"
            else:
                fault = None
            if fault:
                self.injected[fault] += 1
            return number, fault

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as S3 clients expect

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                _, fault = proxy._decide(self.command, path)
                if fault == "reset":
                    # SO_LINGER 0: closing sends a TCP reset, as a dropped connection does.
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault is not None and fault != "delay":  # a permanent status or SlowDown
                    status = proxy.deny.get(path, 503)
                    self._reply(status, {"Content-Type": "application/xml"}, _s3_error(status))
                    return
                if fault == "delay":
                    time.sleep(proxy.delay_s)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = http.client.HTTPConnection(proxy.upstream, timeout=60)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    response = upstream.getresponse()
                    data = response.read()
                    self._reply(response.status, dict(response.getheaders()), data)
                finally:
                    upstream.close()

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                        self.send_header(key, value)
                # HEAD replies carry the object's length but no body.
                length = headers.get("Content-Length", headers.get("content-length"))
                is_head = self.command == "HEAD"
                self.send_header("Content-Length", length if is_head and length else str(len(data)))
                self.end_headers()
                if not is_head:
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _relay

        return Handler
