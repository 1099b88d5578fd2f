"""The streaming HTTP/1.1 reader without a network: chunked decoding and response framing, read by read."""

import asyncio

import pytest

from specwise.bench.http_stream import ChunkedDecoder, HttpError, StreamConnectionPool, _Exchange

BODY = [b'data: {"a": 1}\n\n', b"data: " + b"x" * 300 + b"\n\n", b"data: [DONE]\n\n"]


def _chunked(parts, ext=False, trailers=b""):
    out = b""
    for p in parts:
        out += b"%x%s\r\n%s\r\n" % (len(p), b";name=v" if ext else b"", p)
    return out + b"0\r\n" + trailers + b"\r\n"


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 10_000])
def test_chunked_decoder_gives_the_body_whatever_the_read_boundaries(step):
    wire = _chunked(BODY, ext=True, trailers=b"X-Trailer: 1\r\n")
    dec = ChunkedDecoder()
    got = b"".join(dec.feed(wire[i:i + step]) for i in range(0, len(wire), step))
    assert got == b"".join(BODY) and dec.finished


def test_chunked_decoder_is_not_finished_before_the_last_chunk():
    wire = _chunked(BODY)
    dec = ChunkedDecoder()
    assert dec.feed(wire[:-5]) == b"".join(BODY) and not dec.finished
    assert dec.feed(wire[-5:]) == b"" and dec.finished


@pytest.mark.parametrize("wire", [b"zz\r\nabc\r\n", b"3\r\nabcX\r\n", b"-3\r\nabc\r\n"])
def test_chunked_decoder_rejects_bad_framing(wire):
    with pytest.raises(HttpError) as exc:
        ChunkedDecoder().feed(wire)
    assert exc.value.kind == "protocol"


HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


async def test_each_chunk_gets_the_time_of_the_read_that_completed_it():
    ex = _Exchange(asyncio.get_running_loop())
    first, second = b"%x\r\n%s\r\n" % (len(BODY[0]), BODY[0]), b"%x\r\n%s\r\n" % (len(BODY[1]), BODY[1])
    ex.feed(1.0, HEAD + first)  # head and first chunk in one segment
    ex.feed(2.0, second[:50])  # the second chunk split over two reads
    ex.feed(3.0, second[50:] + b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY[2]), BODY[2]))
    resp = await ex.done
    assert resp.status == 200 and ex.reusable
    assert [t for t, _ in resp.reads] == [1.0, 2.0, 3.0]
    assert resp.body() == b"".join(BODY)
    assert [t for t, b in resp.reads if b.endswith(b"\n\n")] == [1.0, 3.0]


async def test_content_length_and_connection_close_bodies():
    ex = _Exchange(asyncio.get_running_loop())
    ex.feed(1.0, b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbo")
    ex.feed(2.0, b"om")
    assert not ex.done.done()
    ex.feed(3.0, b"!")
    resp = await ex.done
    assert resp.status == 500 and resp.body() == b"boom!" and not ex.reusable

    until_close = _Exchange(asyncio.get_running_loop())
    until_close.feed(1.0, b"HTTP/1.0 200 OK\r\n\r\ndata: x\n\n")
    until_close.lost(None)
    resp = await until_close.done
    assert resp.body() == b"data: x\n\n" and not until_close.reusable


async def test_a_connection_lost_mid_body_is_a_disconnect_that_knows_bytes_came():
    ex = _Exchange(asyncio.get_running_loop())
    ex.feed(1.0, HEAD + b"5\r\nab")
    ex.lost(ConnectionResetError("reset"))
    with pytest.raises(HttpError) as exc:
        await ex.done
    assert exc.value.kind == "disconnected" and exc.value.got_bytes

    silent = _Exchange(asyncio.get_running_loop())
    silent.lost(None)
    with pytest.raises(HttpError) as exc:
        await silent.done
    assert exc.value.kind == "disconnected" and not exc.value.got_bytes


async def test_not_http_is_a_protocol_error():
    ex = _Exchange(asyncio.get_running_loop())
    ex.feed(1.0, b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    with pytest.raises(HttpError) as exc:
        await ex.done
    assert exc.value.kind == "protocol" and not ex.reusable


async def test_request_bytes_carry_host_length_and_headers():
    pool = StreamConnectionPool("http://127.0.0.1:8000/v1/completions", connect_timeout_s=1)
    raw = pool.request_bytes("/v1/completions", b'{"a":1}', {"Authorization": "Bearer k"})
    head, body = raw.split(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/completions HTTP/1.1" and body == b'{"a":1}'
    assert b"Host: 127.0.0.1:8000" in lines and b"Content-Length: 7" in lines and b"Authorization: Bearer k" in lines
    assert StreamConnectionPool("https://h.example/v1", connect_timeout_s=1).host_header == "h.example"
    with pytest.raises(ValueError):
        StreamConnectionPool("ftp://h/v1", connect_timeout_s=1)
