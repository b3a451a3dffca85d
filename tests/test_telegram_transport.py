"""How alerts reach the Bot API: aiogram's aiohttp session against a raw socket server that
answers in the odd ways HTTP allows (204, 100 Continue, chunked, slow, a kept-alive
connection closed by the server), through a local HTTP CONNECT proxy and a SOCKS5 proxy
(TELEGRAM_PROXY), and over TLS from a server whose CA only SSL_CERT_FILE names. Each: no
hang, no duplicate, no wasted attempt."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import ssl
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message
from alerts.delivery.ratelimit import Limits, RateLimiter
from alerts.delivery.telegram import TelegramNotifier
from tests.fake_telegram import TOKEN, FakeTelegram

MESSAGE = Message(title="t", text="BTC-USDT crossed 70000 up", html="BTC crossed", rule_id=1)
OK = b'{"ok": true, "result": {"message_id": 1}}'
Answer = Callable[[asyncio.StreamWriter, int], Awaitable[None]]


def _notifier(url: str, **options: object) -> TelegramNotifier:
    fast = RateLimiter(Limits(bot_per_second=1000, private_interval=0.0))
    return TelegramNotifier(TOKEN, api_url=url, limiter=fast, **options)  # type: ignore[arg-type]


@dataclass
class RawServer:
    """An HTTP server on a bare socket: reads each request, lets `answer` write the reply."""

    answer: Answer
    requests: int = 0
    connections: int = 0
    url: str = ""
    _server: asyncio.Server | None = field(default=None, repr=False)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.requests += 1
                await self.answer(writer, self.requests)
                if writer.is_closing():
                    return
        writer.close()


@contextlib.asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[RawServer]:
    server = RawServer(answer)
    server._server = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    port = server._server.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        server._server.close()


def _reply(status: str, body: bytes, *extra: str) -> bytes:
    headers = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body


async def test_a_204_is_sent_once_without_waiting_for_a_body() -> None:
    async def answer(writer: asyncio.StreamWriter, _n: int) -> None:
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")

    async with raw_server(answer) as server:
        notifier = _notifier(server.url, timeout=5)
        started = time.monotonic()
        await notifier.send(1, MESSAGE)
        assert time.monotonic() - started < 1 and server.requests == 1
        await notifier.close()


async def test_100_continue_chunked_and_slow_answers() -> None:
    async def answer(writer: asyncio.StreamWriter, n: int) -> None:
        if n == 1:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + _reply("200 OK", OK))
        elif n == 2:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in (OK[:10], OK[10:]):
                writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
            writer.write(b"0\r\n\r\n")
        else:
            await asyncio.sleep(0.6)
            writer.write(_reply("200 OK", OK))

    async with raw_server(answer) as server:
        notifier = _notifier(server.url, timeout=3)
        for _ in range(3):
            await notifier.send(1, MESSAGE)
        assert server.requests == 3  # each once: nothing failed, nothing was sent twice
        await notifier.close()


async def test_a_kept_alive_connection_the_server_closed_costs_no_attempt() -> None:
    async def answer(writer: asyncio.StreamWriter, _n: int) -> None:
        writer.write(_reply("200 OK", OK, "Connection: keep-alive"))
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()  # the server gives up on the idle connection, as servers do

    async with raw_server(answer) as server:
        notifier = _notifier(server.url, timeout=3)
        await notifier.send(1, MESSAGE)
        await asyncio.sleep(0.3)
        await notifier.send(1, MESSAGE)  # a new connection, not a failed send
        assert server.requests == 2 and server.connections == 2
        await notifier.close()


async def test_an_error_answer_in_chunks_is_still_mapped() -> None:
    body = b'{"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}'

    async def answer(writer: asyncio.StreamWriter, _n: int) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")

    async with raw_server(answer) as server:
        notifier = _notifier(server.url)
        with pytest.raises(SendFailed) as failed:
            await notifier.send(1, MESSAGE)
        assert failed.value.disable and not failed.value.retry
        await notifier.close()


async def test_no_answer_in_time_is_a_retry_not_a_hang() -> None:
    async def answer(writer: asyncio.StreamWriter, _n: int) -> None:
        await asyncio.sleep(5)

    async with raw_server(answer) as server:
        notifier = _notifier(server.url, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(SendFailed) as failed:
            await notifier.send(1, MESSAGE)
        assert failed.value.retry and time.monotonic() - started < 2
        await notifier.close()


# --- proxies (TELEGRAM_PROXY) ---------------------------------------------------------


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


@dataclass
class Proxy:
    kind: str
    tunnels: list[tuple[str, int]] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.kind == "http":
            request = await reader.readuntil(b"\r\n\r\n")
            target = request.split(b" ")[1].decode()
            host, _, port = target.rpartition(":")
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            _version, methods = await reader.readexactly(2)
            await reader.readexactly(methods)
            writer.write(b"\x05\x00")  # no authentication
            _ver, _cmd, _rsv, kind = await reader.readexactly(4)
            if kind == 1:
                host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
            else:
                host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            port = str(struct.unpack("!H", await reader.readexactly(2))[0])
            writer.write(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")
        self.tunnels.append((host, int(port)))
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


@contextlib.asynccontextmanager
async def proxy(kind: str) -> AsyncIterator[Proxy]:
    running = Proxy(kind)
    server = await asyncio.start_server(running.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    running.url = f"{'http' if kind == 'http' else 'socks5'}://127.0.0.1:{port}"
    try:
        yield running
    finally:
        server.close()


@pytest.mark.parametrize("kind", ["http", "socks5"])
async def test_alerts_go_through_the_proxy_named(kind: str) -> None:
    async with FakeTelegram() as tg, proxy(kind) as through:
        notifier = _notifier(tg.url, proxy=through.url)
        await notifier.send(42, MESSAGE)
        await notifier.close()
    assert [s.chat_id for s in tg.sent] == [42]
    assert through.tunnels and through.tunnels[0][1] == int(tg.url.rsplit(":", 1)[1])


# --- a Bot API server behind a private CA ---------------------------------------------


def _certificates(tmp: Path) -> tuple[Path, ssl.SSLContext]:
    """A CA (its certificate in a file) and a server context for 127.0.0.1 signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alerts test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = tmp / "ca.pem", tmp / "server.pem", tmp / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return ca_file, server


async def test_a_bot_api_server_behind_a_private_ca_works_with_ssl_cert_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca_file, server_context = _certificates(tmp_path)
    async with FakeTelegram(tls=server_context) as tg:
        assert tg.url.startswith("https://")
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "nothing"))
        untrusting = _notifier(tg.url)
        with pytest.raises(SendFailed) as failed:
            await untrusting.send(1, MESSAGE)
        assert failed.value.retry and "certificate" in failed.value.reason.lower()
        await untrusting.close()
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
        trusting = _notifier(tg.url)
        await trusting.send(1, MESSAGE)
        await trusting.close()
    assert [s.chat_id for s in tg.sent] == [1]
