"""The HTTP/1.1 client alerts go out on: JSON POSTs to one Bot API server over kept-alive
connections (TLS for https), each request written whole, in the sender's own step.

aiohttp cost about 150 µs of CPU per request on the path between a price crossing and its
alert, and (before Python 3.12) wrote each request's body from a task of its own, a turn of
the loop later: ten alerts on one push left one by one, each behind the others' preparation
and whatever the loop had queued meanwhile. Here a request is one `write` of bytes built
in one go; the answer is read by status line, headers and a `Content-Length` or chunked
body. Everything else aiohttp does (redirects, cookies, proxies, compression) the Bot API
needs none of.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi

# Longer than any answer the Bot API gives to sendMessage (a message is at most 4,096
# characters); an answer above it is an error, not a reason to buffer without end.
_MAX_ANSWER = 1024 * 1024
# A kept-alive connection unused for this long is closed rather than reused: servers close
# idle connections (commonly after 60-75 s), and a request written into one just closing
# would fail.
IDLE_LIMIT = 30.0


class BadAnswer(Exception):
    """The server's answer is not HTTP/1.x as this client reads it."""


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self, now: float) -> bool:
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and now - self.idle_since < IDLE_LIMIT
        )

    def close(self) -> None:
        self.writer.close()


class HttpPool:
    """POSTs to `base_url`'s server, over at most as many connections as requests in flight
    (the caller bounds those)."""

    def __init__(self, base_url: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the Bot API URL must be http:// or https:// with a host")
        self._host = parts.hostname
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        default_port = self._port == (443 if self._tls else 80)
        self._host_header = (self._host if default_port else f"{self._host}:{self._port}").encode()
        self._ssl = ssl.create_default_context(cafile=certifi.where()) if self._tls else None
        self._idle: list[_Connection] = []
        self._clock = clock

    async def post(
        self,
        path: str,
        body: bytes,
        *,
        before_write: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[int, bytes]:
        """POST `body` (JSON) to `path`; the answer's status and body. `before_write` is
        awaited once a connection is ready, right before the request is written. A
        connection that fails or is interrupted (timeout, cancel) is closed, never reused."""
        connection = await self._connection()
        try:
            if before_write is not None:
                await before_write()
            head = (
                b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (path.encode(), self._host_header, len(body))
            )
            connection.writer.write(head + body)
            status, answer, keep = await _read_answer(connection.reader)
        except BaseException:
            connection.close()
            raise
        if keep:
            connection.idle_since = self._clock()
            self._idle.append(connection)
        else:
            connection.close()
        return status, answer

    async def _connection(self) -> _Connection:
        now = self._clock()
        while self._idle:
            connection = self._idle.pop()  # the most recently used: the likeliest alive
            if connection.usable(now):
                return connection
            connection.close()
        reader, writer = await asyncio.open_connection(
            self._host, self._port, ssl=self._ssl, limit=_MAX_ANSWER
        )
        return _Connection(reader, writer)

    async def close(self) -> None:
        """Close the idle connections."""
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()
        for connection in idle:
            with contextlib.suppress(OSError, ssl.SSLError):
                await connection.writer.wait_closed()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body, and whether the connection may carry another request."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise BadAnswer("the answer's headers are too long") from None
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
        raise BadAnswer("the answer is not HTTP/1.x")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip().lower()
    keep = version == "HTTP/1.1" and headers.get("connection") != "close"
    if "chunked" in headers.get("transfer-encoding", ""):
        return status, await _read_chunked(reader), keep
    if "content-length" in headers:
        length = int(headers["content-length"]) if headers["content-length"].isdigit() else -1
        if not 0 <= length <= _MAX_ANSWER:
            raise BadAnswer("the answer's length is invalid or too large")
        return status, await reader.readexactly(length), keep
    # Neither: the body runs to the end of the connection (however many reads that takes).
    body = bytearray()
    while chunk := await reader.read(65536):
        body += chunk
        if len(body) > _MAX_ANSWER:
            raise BadAnswer("the answer is too large")
    return status, bytes(body), False


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            raise BadAnswer("the answer's chunked body is malformed") from None
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return bytes(body)
        if len(body) + size > _MAX_ANSWER:
            raise BadAnswer("the answer is too large")
        body += await reader.readexactly(size)
        await reader.readexactly(2)  # the chunk's CRLF
