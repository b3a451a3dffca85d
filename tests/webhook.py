"""A local json:// endpoint for Apprise, over real HTTP, that can fail or answer late on
purpose."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web


class Receiver:
    """A json:// endpoint: answers `statuses` in turn (then 200) after `delay` seconds, and
    records the bodies it accepted and the most requests it held at once."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.delay = 0.0
        self.bodies: list[dict[str, Any]] = []
        self.raw: list[bytes] = []  # every body accepted, as it came (form://, xml://...)
        self.active = 0
        self.peak = 0
        self.port = 0
        self.set_cookie = ""  # a Set-Cookie header for every answer
        self.cookies: list[str | None] = []  # each request's Cookie header
        self.peers: list[Any] = []  # each request's client address: a connection per address
        self.headers: list[dict[str, str]] = []  # each request's headers
        self.arrivals: list[float] = []  # each request's arrival (time.monotonic())
        self.failure_headers: dict[str, str] = {}  # sent with every answer but a 200
        self._arrived = asyncio.Event()

    async def holding(self, count: int) -> None:
        """Wait until `count` requests are in the receiver's hands at once."""
        while self.active < count:
            self._arrived.clear()
            await self._arrived.wait()

    async def handle(self, request: web.Request) -> web.Response:
        self.active += 1
        self.peak = max(self.peak, self.active)
        self._arrived.set()
        self.cookies.append(request.headers.get("Cookie"))
        self.headers.append(dict(request.headers))
        self.arrivals.append(time.monotonic())
        self.peers.append(request.transport and request.transport.get_extra_info("peername"))
        try:
            await asyncio.sleep(self.delay)
            status = self.statuses.pop(0) if self.statuses else 200
            if status == 200:
                self.raw.append(await request.read())
                if request.content_type == "application/json":
                    self.bodies.append(await request.json())
            headers = {"Set-Cookie": self.set_cookie} if self.set_cookie else {}
            if status != 200:
                headers.update(self.failure_headers)
            return web.Response(status=status, headers=headers)
        finally:
            self.active -= 1

    def url(self, credentials: str = "", scheme: str = "json", host: str = "127.0.0.1") -> str:
        """Its json:// URL (or another scheme's), with `credentials` ("user:password@")."""
        return f"{scheme}://{credentials}{host}:{self.port}/hook"


@contextlib.asynccontextmanager
async def serving(
    receiver: Receiver, host: str = "127.0.0.1", keepalive: float = 75.0
) -> AsyncIterator[Receiver]:
    """`receiver` served on a free local port (set as its `port`) until the block ends; an
    idle connection is closed after `keepalive` seconds."""
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, keepalive_timeout=keepalive)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    receiver.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield receiver
    finally:
        await runner.cleanup()
