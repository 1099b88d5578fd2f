"""The bench client's hot path: HTTP/1.1 streaming POSTs on an ``asyncio.Protocol``, stamped on arrival.

Why not aiohttp here (it serves everything else: model discovery, /metrics, health checks): a
streamed chunk in aiohttp goes socket -> protocol -> HTTP parser -> ``StreamReader`` -> a task
wake-up, and a timestamp taken in the task waits behind every other task the loop runs first. With
N streams emitting in the same engine step (as vLLM does) the N-th stream's stamp is late by the
work of the N-1 before it, end-of-stream parsing included: ``benchmarks/client_accuracy.py`` measured
30 us of client CPU per chunk and a P99 ITL error of 16 ms at 100 streams, 111 ms at 500.

Here every socket read is stamped with ``time.perf_counter()`` first thing in ``data_received``,
which the event loop calls for every readable socket of a poll before it runs any task; the body
is de-chunked on the spot (a few slices) and the only task wake-up is the one at the end of the
response. A chunk's timestamp is the arrival of the socket read that completed it: bytes that
arrived together share their read's time, which is their true (kernel-to-process) arrival time
within the loop's poll latency.

Scope: HTTP/1.1 with keep-alive (a small pool of idle connections per endpoint, dropped after
``keepalive_s`` so that a connection the server closed idle is not reused), chunked, Content-Length
or read-until-close bodies, TLS for ``https`` URLs; no proxies, no compression (``Accept-Encoding:
identity``) - as the aiohttp session it replaces (aiohttp ignores proxy variables by default).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from urllib.parse import urlsplit

__all__ = ["ChunkedDecoder", "HttpError", "StreamConnectionPool", "StreamResponse"]


class HttpError(Exception):
    """The connection or the response framing failed; ``kind`` is ``connect``, ``disconnected`` or ``protocol``."""

    def __init__(self, kind: str, message: str, *, got_bytes: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.got_bytes = got_bytes


class ChunkedDecoder:
    """Incremental ``Transfer-Encoding: chunked`` decoder: :meth:`feed` returns the body bytes a read completed."""

    __slots__ = ("_buf", "_left", "_crlf", "_trailers", "finished")

    def __init__(self) -> None:
        self._buf = b""
        self._left = 0  # bytes of the current chunk still to come
        self._crlf = False  # the CRLF after a chunk's data is due
        self._trailers = False  # after the zero-size chunk: trailer lines up to an empty line
        self.finished = False

    def feed(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        pos, n = 0, len(buf)
        out: list[bytes] = []
        while pos < n and not self.finished:
            if self._left:
                take = min(self._left, n - pos)
                out.append(buf[pos:pos + take])
                pos += take
                self._left -= take
                self._crlf = self._left == 0
                continue
            if self._crlf:
                if n - pos < 2:
                    break
                if buf[pos:pos + 2] != b"\r\n":
                    raise HttpError("protocol", "malformed chunked body: no CRLF after a chunk")
                pos += 2
                self._crlf = False
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                break
            line = buf[pos:end]
            pos = end + 2
            if self._trailers:
                self.finished = not line
                continue
            try:
                size = int(line.split(b";", 1)[0], 16)
            except ValueError:
                raise HttpError("protocol", f"malformed chunk size line {line[:40]!r}") from None
            if size < 0:
                raise HttpError("protocol", f"malformed chunk size line {line[:40]!r}")
            if size == 0:
                self._trailers = True
            else:
                self._left = size
        self._buf = buf[pos:] if pos < n else b""
        return out[0] if len(out) == 1 else b"".join(out)


class StreamResponse:
    """A finished (or failed) response: status, headers, and the body as (arrival perf_counter, bytes) reads."""

    __slots__ = ("status", "headers", "reads")

    def __init__(self, status: int, headers: dict[str, str], reads: list[tuple[float, bytes]]) -> None:
        self.status, self.headers, self.reads = status, headers, reads

    def body(self) -> bytes:
        return b"".join(b for _, b in self.reads)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._done: asyncio.Future[StreamResponse] | None = None

    # --- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        t = time.perf_counter()  # first: this is the chunk's arrival time
        if self._done is None or self._done.done():
            self._broken()  # bytes nobody asked for: the connection's framing is lost
            return
        self._got_bytes = True
        try:
            if self._head is not None:
                self._head += data
                end = self._head.find(b"\r\n\r\n")
                if end < 0:
                    if len(self._head) > 65536:
                        raise HttpError("protocol", "response header over 64 KiB")
                    return
                data = self._head[end + 4:]
                self._parse_head(self._head[:end])
                self._head = None
                if self._complete():
                    return
                if not data:
                    return
            if self._chunked is not None:
                body = self._chunked.feed(data)
                if body:
                    self._reads.append((t, body))
                if self._chunked.finished:
                    self._finish()
            else:
                if self._remaining is not None:
                    data = data[:self._remaining]
                    self._remaining -= len(data)
                self._reads.append((t, data))
                self._complete()
        except HttpError as exc:
            self._fail(exc)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost settles the response

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._done is None or self._done.done():
            return
        if self._head is None and self._chunked is None and self._remaining is None:
            self._finish()  # a body delimited by the connection's close
            return
        why = f"{type(exc).__name__}: {exc}" if exc else "the server closed the connection"
        self._fail(HttpError("disconnected", why, got_bytes=self._got_bytes))

    # --- request/response ------------------------------------------------------------------------
    def request(self, payload: bytes) -> asyncio.Future[StreamResponse]:
        assert self.transport is not None and (self._done is None or self._done.done())
        self._done = asyncio.get_running_loop().create_future()
        self._head: bytes | None = b""
        self._got_bytes = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._chunked: ChunkedDecoder | None = None
        self._remaining: int | None = None
        self._keep_alive = True
        self._reads: list[tuple[float, bytes]] = []
        self.transport.write(payload)
        return self._done

    @property
    def reusable(self) -> bool:
        return not self.closed and self._keep_alive and self._done is not None and self._done.done() \
            and not self._done.cancelled() and self._done.exception() is None

    def _parse_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise HttpError("protocol", f"not an HTTP/1.x response: {lines[0][:80]!r}")
        self._status = int(parts[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self._headers[name.strip().lower()] = value.strip()
        connection = self._headers.get("connection", "").lower()
        self._keep_alive = "close" not in connection and (parts[0] != "HTTP/1.0" or "keep-alive" in connection)
        if "chunked" in self._headers.get("transfer-encoding", "").lower():
            self._chunked = ChunkedDecoder()
        elif "content-length" in self._headers:
            try:
                self._remaining = int(self._headers["content-length"])
            except ValueError:
                raise HttpError("protocol", "malformed Content-Length") from None
        elif self._status in (204, 304) or 100 <= self._status < 200:
            self._remaining = 0
        else:
            self._keep_alive = False  # the body ends when the server closes the connection

    def _complete(self) -> bool:
        if self._chunked is None and self._remaining == 0:
            self._finish()
            return True
        return False

    def _finish(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(StreamResponse(self._status, self._headers, self._reads))

    def _fail(self, exc: HttpError) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_exception(exc)
        self._broken()

    def _broken(self) -> None:
        self._keep_alive = False
        if self.transport is not None and not self.closed:
            self.transport.close()


class StreamConnectionPool:
    """Keep-alive connections to one origin; :meth:`post` sends one request and awaits its whole response."""

    def __init__(self, url: str, *, connect_timeout_s: float, keepalive_s: float = 3.0,
                 max_connections: int = 0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        default_port = (parts.scheme == "https" and self.port == 443) or (parts.scheme == "http" and self.port == 80)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        if ":" in self.host and not default_port:
            self.host_header = f"[{self.host}]:{self.port}"
        self.connect_timeout_s = connect_timeout_s
        self.keepalive_s = keepalive_s
        self._idle: list[_Connection] = []
        self._limit = asyncio.Semaphore(max_connections) if max_connections > 0 else None

    def request_bytes(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host_header}", f"Content-Length: {len(body)}",
                "Accept-Encoding: identity", "Connection: keep-alive"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(_Connection, self.host, self.port, ssl=self.ssl)
        except TimeoutError:
            raise HttpError("connect_timeout", f"no connection within {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise HttpError("connect", f"cannot connect: {exc}") from exc
        return conn

    def _take_idle(self) -> tuple[_Connection | None, bool]:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_s:
                return conn, True
            if conn.transport is not None and not conn.closed:
                conn.transport.close()
        return None, False

    async def post(self, payload: bytes) -> tuple[StreamResponse, bool]:
        """Send ``payload`` (from :meth:`request_bytes`); returns the response and whether the connection was reused.

        Raises :class:`HttpError`. A cancelled or failed request closes its connection.
        """
        if self._limit is not None:
            async with self._limit:
                return await self._post(payload)
        return await self._post(payload)

    async def _post(self, payload: bytes) -> tuple[StreamResponse, bool]:
        conn, reused = self._take_idle()
        if conn is None:
            conn = await self._connect()
        ok = False
        try:
            resp = await conn.request(payload)
            ok = True
        finally:
            if ok and conn.reusable:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            elif conn.transport is not None and not conn.closed:
                conn.transport.close()
        return resp, reused

    def close(self) -> None:
        for conn in self._idle:
            if conn.transport is not None and not conn.closed:
                conn.transport.close()
        self._idle.clear()
