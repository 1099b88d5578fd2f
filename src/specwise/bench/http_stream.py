"""The bench client's hot path: HTTP/1.1 streaming POSTs whose every socket read carries its arrival time.

Why not aiohttp here (it serves everything else: model discovery, /metrics, health checks): a
streamed chunk in aiohttp goes socket -> protocol -> HTTP parser -> ``StreamReader`` -> a task
wake-up, and a timestamp taken in the task waits behind every other task the loop runs first. With
N streams emitting in the same engine step (as vLLM does) the N-th stream's stamp is late by the
work of the N-1 before it, end-of-stream parsing included: ``benchmarks/client_accuracy.py`` measured
a P99 ITL error of 66 ms at 500 streams on 2 cores (benchmarks/results/*aiohttp_before.json).

Two ways to stamp a read, best first:

* kernel stamps (plain ``http`` on Linux): the socket is read with ``recvmsg`` and ``SO_TIMESTAMPNS``,
  so each read carries the kernel's receive time of its last TCP segment. A busy or late event loop
  no longer delays a chunk's time (P99 error 0.01 ms at 500 streams, same setup).
* loop stamps (``https``, other systems): ``time.perf_counter()`` first thing in ``data_received``,
  which the loop calls for every readable socket of a poll before it runs any task; reads handled
  later in the same poll are late by the work of those before them.

Either way a chunk's timestamp is the arrival of the read that completed it: chunks of one stream
that arrived before the client read the first share the later time (a client that fell a whole
inter-token gap behind). The body is de-chunked on the spot (a few slices) and the only task
wake-up is the one at the end of the response.

Scope: HTTP/1.1 with keep-alive (a small pool of idle connections per endpoint, dropped after
``keepalive_s`` so that a connection the server closed idle is not reused), chunked, Content-Length
or read-until-close bodies, TLS for ``https`` URLs; no proxies, no compression (``Accept-Encoding:
identity``) - as the aiohttp session it replaces (aiohttp ignores proxy variables by default).
"""

from __future__ import annotations

import asyncio
import functools
import platform
import socket
import ssl
import struct
import sys
import time
from urllib.parse import urlsplit

__all__ = ["ChunkedDecoder", "HttpError", "StreamConnectionPool", "StreamResponse", "kernel_stamps_for",
           "kernel_stamps_supported"]

# SO_TIMESTAMPNS (= SCM_TIMESTAMPNS) from Linux's asm-generic/socket.h; Python's socket module lacks it.
# Architectures with their own numbering (alpha, mips, parisc, sparc) fall back to loop-time stamps.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@ll")  # struct timespec {time_t tv_sec; long tv_nsec} on Linux
# 64 KiB: a buffer above glibc's mmap threshold (128 KiB) costs an mmap/munmap per read (5x the read itself)
_READ_SIZE = 65536
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 64


@functools.cache
def kernel_stamps_supported() -> bool:
    """Whether plain-TCP reads can carry the kernel's receive time (Linux on x86, ARM, RISC-V, POWER, s390)."""
    if sys.platform != "linux" or not hasattr(socket.socket, "recvmsg"):
        return False
    if platform.machine().lower().startswith(("alpha", "mips", "parisc", "sparc")):
        return False
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            return sock.getsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS) == 1
    except OSError:
        return False


def kernel_stamps_for(url: str) -> bool:
    """Whether streams from ``url`` get kernel receive stamps: plain ``http`` on a system that supports them
    (TLS reads go through the event loop's transport, so ``https`` gets loop stamps)."""
    return urlsplit(url).scheme == "http" and kernel_stamps_supported()


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


class _Exchange:
    """One request's response, parsed as its bytes arrive: ``feed`` a socket read, ``lost`` at the end."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[StreamResponse] = loop.create_future()
        self.got_bytes = False
        self.keep_alive = True
        self._head: bytes | None = b""
        self._status = 0
        self._headers: dict[str, str] = {}
        self._chunked: ChunkedDecoder | None = None
        self._remaining: int | None = None
        self._reads: list[tuple[float, bytes]] = []

    def feed(self, t: float, data: bytes) -> None:
        if self.done.done():
            self.keep_alive = False  # bytes nobody asked for: the connection's framing is lost
            return
        self.got_bytes = True
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
                if self._complete() or not data:
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
            self.fail(exc)

    def lost(self, exc: BaseException | None) -> None:
        """The connection closed (``exc`` None: an orderly close by the server)."""
        self.keep_alive = False
        if self.done.done():
            return
        if self._head is None and self._chunked is None and self._remaining is None:
            self._finish()  # a body delimited by the connection's close
            return
        why = f"{type(exc).__name__}: {exc}" if exc else "the server closed the connection"
        self.fail(HttpError("disconnected", why, got_bytes=self.got_bytes))

    def fail(self, exc: HttpError) -> None:
        self.keep_alive = False
        if not self.done.done():
            self.done.set_exception(exc)

    @property
    def reusable(self) -> bool:
        return self.keep_alive and self.done.done() and not self.done.cancelled() and self.done.exception() is None

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
        self.keep_alive = "close" not in connection and (parts[0] != "HTTP/1.0" or "keep-alive" in connection)
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
            self.keep_alive = False  # the body ends when the server closes the connection

    def _complete(self) -> bool:
        if self._chunked is None and self._remaining == 0:
            self._finish()
            return True
        return False

    def _finish(self) -> None:
        if not self.done.done():
            self.done.set_result(StreamResponse(self._status, self._headers, self._reads))


class _Connection:
    """One HTTP/1.1 connection, one request at a time; subclasses deliver (arrival time, bytes) to the exchange."""

    kernel_stamps = False

    def __init__(self) -> None:
        self.closed = False
        self.idle_since = 0.0
        self.exchange: _Exchange | None = None

    def request(self, payload: bytes) -> asyncio.Future[StreamResponse]:
        assert self.exchange is None or self.exchange.done.done()
        self.exchange = _Exchange(asyncio.get_running_loop())
        self._write(payload)
        return self.exchange.done

    @property
    def reusable(self) -> bool:
        return not self.closed and self.exchange is not None and self.exchange.reusable

    def _received(self, t: float, data: bytes) -> None:
        if self.exchange is None:
            self.close()  # bytes before any request: not an HTTP server we understand
            return
        self.exchange.feed(t, data)
        if not self.exchange.keep_alive and self.exchange.done.done():
            self.close()  # answered with Connection: close, failed, or sent bytes nobody asked for

    def _lost(self, exc: BaseException | None) -> None:
        self.closed = True
        if self.exchange is not None:
            self.exchange.lost(exc)

    def _write(self, payload: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _ProtocolConnection(_Connection, asyncio.Protocol):
    """Through an asyncio transport (TLS, or no kernel timestamps): stamped first thing in ``data_received``."""

    def __init__(self) -> None:
        super().__init__()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._received(time.perf_counter(), data)

    def eof_received(self) -> bool | None:
        return None  # close the transport; connection_lost settles the response

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost(exc)

    def _write(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(payload)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


class _KernelStampedConnection(_Connection):
    """A plain TCP socket read with ``recvmsg``: each read carries the kernel's receive time (SO_TIMESTAMPNS).

    The kernel stamps a TCP read with the receive time of the last segment it consumed (Linux
    ``tcp_recv_timestamp``) on the CLOCK_REALTIME scale; it is moved to the ``perf_counter`` scale
    with the two clocks' offset read at the same moment (both run at the same NTP-slewed rate; only a
    clock step between a segment's arrival and its read would show). A late event loop therefore no
    longer delays a chunk's time; only chunks of one stream that arrived before the previous read
    share a time, as with any per-read stamp.
    """

    kernel_stamps = True

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.sock = sock
        self.loop = loop
        self._fd = sock.fileno()
        self._unsent = b""
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            data, ancdata, _, _ = self.sock.recvmsg(_READ_SIZE, _ANC_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._shutdown()
            self._lost(exc)
            return
        now = time.perf_counter()
        if not data:
            self._shutdown()
            self._lost(None)
            return
        t = now
        for level, kind, raw in ancdata:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(raw) >= _TIMESPEC.size:
                sec, nsec = _TIMESPEC.unpack_from(raw)
                # realtime -> perf_counter; never later than the read itself
                t = min(now, sec + nsec * 1e-9 - (time.time() - time.perf_counter()))
        self._received(t, data)

    def _send(self, data: bytes) -> int | None:
        """Bytes the socket took (0 when it would block); None when the connection failed (already reported)."""
        try:
            return self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self._shutdown()
            self._lost(exc)
            return None

    def _write(self, payload: bytes) -> None:
        sent = self._send(payload)
        if sent is not None and sent < len(payload):
            self._unsent = payload[sent:]
            self.loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        sent = self._send(self._unsent)
        if sent is None:
            return
        self._unsent = self._unsent[sent:]
        if not self._unsent:
            self.loop.remove_writer(self._fd)

    def _shutdown(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self._fd)
            if self._unsent:
                self.loop.remove_writer(self._fd)
                self._unsent = b""
            self.sock.close()

    def close(self) -> None:
        if not self.closed:
            self._shutdown()
            self._lost(None)


class StreamConnectionPool:
    """Keep-alive connections to one origin; :meth:`post` sends one request and awaits its whole response."""

    def __init__(self, url: str, *, connect_timeout_s: float, keepalive_s: float = 3.0,
                 max_connections: int = 0, kernel_stamps: bool = True) -> None:
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
        self.kernel_stamps = kernel_stamps and kernel_stamps_for(url)
        self._resolved: tuple[float, list] | None = None
        self._resolve_lock = asyncio.Lock()

    def request_bytes(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host_header}", f"Content-Length: {len(body)}",
                "Accept-Encoding: identity", "Connection: keep-alive"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            if not self.kernel_stamps:
                connecting = loop.create_connection(_ProtocolConnection, self.host, self.port, ssl=self.ssl)
                _, conn = await asyncio.wait_for(connecting, self.connect_timeout_s)
                return conn
            return await asyncio.wait_for(self._connect_socket(loop), self.connect_timeout_s)
        except asyncio.TimeoutError:
            raise HttpError("connect_timeout", f"no connection within {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise HttpError("connect", f"cannot connect: {exc}") from exc

    async def _addresses(self, loop: asyncio.AbstractEventLoop) -> list:
        """The host's addresses: an IP literal at once; a name through the resolver, cached for 10 s (as aiohttp)."""
        async with self._resolve_lock:  # one lookup for a burst of new connections, which then keep their order
            if self._resolved is not None and time.monotonic() - self._resolved[0] < 10.0:
                return self._resolved[1]
            try:
                infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM,
                                           flags=socket.AI_NUMERICHOST)
            except socket.gaierror:
                infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            self._resolved = (time.monotonic(), infos)
            return infos

    async def _connect_socket(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        infos = await self._addresses(loop)
        last: OSError = OSError(f"{self.host} did not resolve")
        for family, type_, proto, _, addr in infos:
            sock = socket.socket(family, type_, proto)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                await loop.sock_connect(sock, addr)
            except OSError as exc:
                sock.close()
                last = exc
                continue
            except BaseException:
                sock.close()
                raise
            return _KernelStampedConnection(sock, loop)
        raise last

    def _take_idle(self) -> tuple[_Connection | None, bool]:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable and now - conn.idle_since < self.keepalive_s:
                return conn, True
            conn.close()
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
            else:
                conn.close()
        return resp, reused

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
