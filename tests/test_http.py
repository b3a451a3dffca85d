"""The Bot API HTTP client against a local server speaking raw HTTP/1.1: answers with a length,
chunked, or to the end of the connection; kept-alive connections reused and dead ones not;
bad answers refused; and the request written whole."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.delivery.http import BadAnswer, HttpPool


class RawServer:
    """Answers each request with `answer(body)` (raw bytes); records requests and connections;
    closes a connection after answering when `close_after` is set."""

    def __init__(self, answer: Callable[[bytes], bytes]) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0
        self.close_after = False
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                writer.write(self.answer(body))
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def _talking_to(raw: RawServer) -> AsyncIterator[HttpPool]:
    """A client pool for `raw`, served on a free port, until the block ends."""
    server = await asyncio.start_server(raw.handle, "127.0.0.1", 0)
    raw.port = server.sockets[0].getsockname()[1]
    pool = HttpPool(f"http://127.0.0.1:{raw.port}/botTOKEN/sendMessage")
    try:
        yield pool
    finally:
        await pool.close()
        server.close()


def _sized(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def _chunked(body: bytes, cuts: list[int]) -> bytes:
    pieces, start = [], 0
    for cut in [*sorted({c for c in cuts if 0 < c < len(body)}), len(body)]:
        pieces.append(body[start:cut])
        start = cut
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


async def test_a_request_is_written_whole_and_connections_are_kept_alive() -> None:
    raw = RawServer(lambda body: _sized(b'{"ok":true}'))
    written: list[int] = []

    async def before() -> None:
        written.append(len(raw.requests))

    async with _talking_to(raw) as pool:
        for i in range(3):
            body = b'{"n":%d}' % i
            assert await pool.post("/botT/sendMessage", body, before_write=before) == (
                200,
                b'{"ok":true}',
            )
        assert raw.connections == 1 and written == [0, 1, 2]
        first = raw.requests[0]
        assert first.startswith(b"POST /botT/sendMessage HTTP/1.1\r\n")
        assert f"Host: 127.0.0.1:{raw.port}\r\n".encode() in first
        assert b"Content-Type: application/json\r\n" in first and first.endswith(b'{"n":0}')


async def test_a_connection_the_server_closed_is_not_reused() -> None:
    raw = RawServer(lambda body: _sized(b"{}"))
    raw.close_after = True
    async with _talking_to(raw) as pool:
        for _ in range(3):
            assert (await pool.post("/x", b"{}"))[0] == 200
            await asyncio.sleep(0.05)  # the server's close arrives while the connection idles
        assert raw.connections == 3


class _SlowWriter(RawServer):
    """Answers without a length, in two writes with a pause between, then closes."""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        writer.write(b'HTTP/1.1 200 OK\r\n\r\n{"ok":')
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"true}")
        writer.close()


async def test_an_answer_to_the_end_of_the_connection_is_read_whole() -> None:
    async with _talking_to(_SlowWriter(lambda body: b"")) as pool:
        assert await pool.post("/x", b"{}") == (200, b'{"ok":true}')


async def test_connection_close_and_an_answer_to_the_end_of_the_connection() -> None:
    raw = RawServer(lambda body: b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n<html>")
    raw.close_after = True
    async with _talking_to(raw) as pool:
        assert await pool.post("/x", b"{}") == (502, b"<html>")
        assert await pool.post("/x", b"{}") == (502, b"<html>")
        assert raw.connections == 2


@pytest.mark.parametrize(
    "answer",
    [
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 2xx OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
async def test_an_answer_that_is_not_http_is_refused(answer: bytes) -> None:
    raw = RawServer(lambda body: answer)
    async with _talking_to(raw) as pool:
        with pytest.raises(BadAnswer):
            await pool.post("/x", b"{}")


async def test_a_cut_answer_fails_and_its_connection_is_dropped() -> None:
    raw = RawServer(lambda body: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}")
    raw.close_after = True
    async with _talking_to(raw) as pool:
        with pytest.raises(asyncio.IncompleteReadError):
            await pool.post("/x", b"{}")
        raw.answer = lambda body: _sized(b"{}")
        assert (await pool.post("/x", b"{}"))[0] == 200 and raw.connections == 2


def test_only_http_and_https_urls() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        HttpPool("ftp://example.org/")


@settings(max_examples=60, deadline=None)
@given(
    body=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=8),
    chunked=st.booleans(),
    upper=st.booleans(),
)
def test_any_body_reads_back_whole(
    body: bytes, cuts: list[int], chunked: bool, upper: bool
) -> None:
    """Bodies of any bytes, sent with a length or in chunks cut anywhere, with headers in any
    case, read back exactly."""
    answer = _chunked(body, cuts) if chunked else _sized(body)
    if upper:
        head, _, rest = answer.partition(b"\r\n\r\n")
        answer = head.upper() + b"\r\n\r\n" + rest

    async def run() -> tuple[int, bytes]:
        raw = RawServer(lambda _: answer)
        async with _talking_to(raw) as pool:
            return await pool.post("/x", b"{}")

    assert asyncio.run(run()) == (200, body)
