"""Arrival stamps and connection reuse of the streaming client over real sockets on 127.0.0.1.

Kernel receive stamps must give a chunk the time it arrived even while the client's event loop is
blocked; loop stamps (the TLS path) give the time the loop read it. Both paths must produce the same
records, faults included.
"""

import asyncio
import socket
import threading
import time

import pytest

from specwise.bench.client import ClientConfig, StreamingClient
from specwise.bench.http_stream import StreamConnectionPool, kernel_stamps_supported

from .sse_server import ServerBehaviour, SSEServer
from .test_client_http import _req

pytestmark = pytest.mark.integration

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"


def _frame(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class ScriptedServer:
    """Answers every request with ``script``: (delay before, bytes) steps; logs the time before each send."""

    def __init__(self, script, close=False):
        self.script, self.close = script, close
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.accepted = 0
        self.sent_at: list[float] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                length = int(next(h.split(b":")[1] for h in lines if h.lower().startswith(b"content-length")))
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                for i, (delay, data) in enumerate(self.script):
                    time.sleep(delay)
                    if i == 0:
                        data = HEAD + (b"Connection: close\r\n" if self.close else b"") + b"\r\n" + data
                    self.sent_at.append(time.perf_counter())
                    conn.sendall(data)
                if self.close:
                    return

    def stop(self):
        self.sock.close()


CHUNK = b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n'
LAST = b'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"length"}]}\n\ndata: [DONE]\n\n'
SCRIPT = [(0.0, b""), (0.01, _frame(CHUNK)), (0.29, _frame(LAST) + b"0\r\n\r\n")]


@pytest.mark.parametrize("kernel", [True, False])
async def test_a_blocked_event_loop_delays_loop_stamps_but_not_kernel_stamps(kernel):
    if kernel and not kernel_stamps_supported():
        pytest.skip("no SO_TIMESTAMPNS on this platform")
    srv = ScriptedServer(SCRIPT)
    pool = StreamConnectionPool(srv.url + "/v1/chat/completions", connect_timeout_s=5, kernel_stamps=kernel)
    try:
        task = asyncio.ensure_future(pool.post(pool.request_bytes("/v1/chat/completions", b"{}", {})))
        while not srv.sent_at:  # the server has the request and answered with its head
            await asyncio.sleep(0.001)
        time.sleep(0.15)  # the loop is blocked while the first chunk arrives (10 ms after the head)
        unblocked = time.perf_counter()
        resp, _ = await task
    finally:
        pool.close()
        srv.stop()
    first_chunk_at = next(t for t, b in resp.reads if b.endswith(b"\n\n"))
    sent = srv.sent_at[1]
    if kernel:
        assert sent - 0.001 <= first_chunk_at < unblocked - 0.05
    else:
        assert first_chunk_at >= unblocked


async def test_keep_alive_connections_are_reused_until_idle_too_long_or_closed():
    script = [(0.0, _frame(CHUNK) + _frame(LAST) + b"0\r\n\r\n")]
    for close, idle_s, keepalive_s, want in [(False, 0.0, 3.0, 1), (False, 0.06, 0.03, 3), (True, 0.0, 3.0, 3)]:
        srv = ScriptedServer(script, close=close)
        pool = StreamConnectionPool(srv.url + "/v1/completions", connect_timeout_s=5, keepalive_s=keepalive_s)
        try:
            reused = []
            for _ in range(3):
                resp, was_reused = await pool.post(pool.request_bytes("/v1/completions", b"{}", {}))
                assert resp.status == 200 and resp.body().endswith(b"[DONE]\n\n")
                reused.append(was_reused)
                await asyncio.sleep(idle_s)
        finally:
            pool.close()
            srv.stop()
        assert srv.accepted == want, (close, idle_s)
        assert reused == [False] + [want == 1] * 2


@pytest.mark.parametrize("kernel", [True, False])
async def test_both_stamp_paths_give_the_same_records(kernel):
    with SSEServer(ServerBehaviour(tokens_per_chunk=[3, 2, 4], per_request_spec=True)) as srv:
        cfg = ClientConfig(base_url=srv.url + "/v1", model="test-model", timeout_s=5.0)
        async with StreamingClient(cfg, kernel_stamps=kernel) as c:
            outs = await asyncio.gather(*(c.send(_req(i), role="speculative", max_tokens_per_step=4)
                                          for i in range(8)))
    for out in outs:
        r = out.record
        assert r.ok, r.error
        assert r.chunk_tokens == [1, 3, 2, 4] and r.output_tokens == 10 and r.token_count_method == "usage"
        assert r.server_spec.per_step_accepted == [2, 1, 3]
        assert 0 < r.ttft_s <= r.e2e_s and r.chunk_offsets_s == sorted(r.chunk_offsets_s)
        assert r.arrival_stamps == ("kernel" if kernel else "event_loop")


@pytest.mark.parametrize("fault,kinds", [
    ("http_500", {"http_500"}), ("truncate", {"truncated_stream"}), ("malformed", {"malformed_sse"}),
    ("drop", {"disconnected", "truncated_stream"}), ("slow", {"timeout"}), ("stream_error", {"stream_error"}),
])
async def test_loop_stamp_path_reports_faults_like_the_kernel_path(fault, kinds):
    with SSEServer(ServerBehaviour(fault=fault, tokens_per_chunk=[2])) as srv:
        cfg = ClientConfig(base_url=srv.url + "/v1", model="test-model", timeout_s=2.0)
        async with StreamingClient(cfg, kernel_stamps=False) as c:
            out = await c.send(_req(), role="baseline")
    assert not out.record.ok and out.record.error_kind in kinds


async def test_server_gone_while_streaming_closes_cleanly_and_the_next_request_reconnects():
    with SSEServer(ServerBehaviour(fault="drop", fault_every=2, tokens_per_chunk=[2])) as srv:
        cfg = ClientConfig(base_url=srv.url + "/v1", model="test-model", timeout_s=5.0)
        async with StreamingClient(cfg) as c:
            kinds = [(await c.send(_req(i), role="baseline")).record.error_kind for i in range(4)]
    assert kinds[0] is None and kinds[2] is None
    assert kinds[1] in ("disconnected", "truncated_stream") and kinds[3] in ("disconnected", "truncated_stream")


async def test_a_host_name_is_resolved_and_every_address_tried():
    # "localhost" may resolve to ::1 first, where nothing listens: the client must go on to 127.0.0.1
    with SSEServer(ServerBehaviour(tokens_per_chunk=[2])) as srv:
        cfg = ClientConfig(base_url=f"http://localhost:{srv.port}/v1", model="test-model", timeout_s=5.0)
        async with StreamingClient(cfg) as c:
            outs = await asyncio.gather(*(c.send(_req(i), role="baseline") for i in range(3)))
    assert all(o.record.ok for o in outs), [o.record.error for o in outs]
