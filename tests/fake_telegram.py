"""A local fake of the Telegram Bot API over real HTTP, for aiogram pointed at it.

It records every sendMessage and can be told to answer the next request for a chat with an
error (429 with retry_after, 403, 400, 5xx, a migration, or a delay past the client's timeout).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "123456:TEST-bot-token-SECRET"


@dataclass
class Sent:
    chat_id: int
    text: str
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    at: float


@dataclass
class FakeTelegram:
    """Start with `async with FakeTelegram() as tg`; `tg.url` is TELEGRAM_API_URL."""

    sent: list[Sent] = field(default_factory=list)
    requests: int = 0
    _faults: dict[int | None, list[dict[str, Any]]] = field(default_factory=dict)
    #: When set, enforce Telegram's documented limits scaled by this factor: at most
    #: 30 x scale messages in any second, one per private chat per 1/scale s; 429 beyond.
    enforce_scale: float | None = None
    rejected: int = 0
    _recent: deque[float] = field(default_factory=deque)
    _chat_last: dict[int, float] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    url: str = ""

    def fail_next(self, chat_id: int | None = None, **fault: Any) -> None:
        """Answer the next sendMessage (to `chat_id`, or to anyone) with `fault`:
        status=..., description=..., retry_after=..., migrate_to=..., delay=..."""
        self._faults.setdefault(chat_id, []).append(fault)

    def texts(self, chat_id: int) -> list[str]:
        """The texts received for one chat, in order."""
        return [s.text for s in self.sent if s.chat_id == chat_id]

    async def __aenter__(self) -> FakeTelegram:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.match_info["token"] != TOKEN:
            return _error(401, "Unauthorized")
        if request.match_info["method"] != "sendMessage":
            return web.json_response({"ok": True, "result": True})
        form = await _fields(request)
        chat_id = int(form["chat_id"])
        fault = self._take_fault(chat_id)
        if fault:
            if "delay" in fault:
                await asyncio.sleep(fault["delay"])
            if "migrate_to" in fault:
                return _error(
                    400,
                    "Bad Request: group chat was upgraded to a supergroup chat",
                    {"migrate_to_chat_id": fault["migrate_to"]},
                )
            if "status" in fault:
                params = {"retry_after": fault["retry_after"]} if "retry_after" in fault else None
                return _error(fault["status"], fault.get("description", "error"), params)
        if self.enforce_scale is not None and self._over_limit(chat_id):
            self.rejected += 1
            return _error(429, "Too Many Requests: retry after 1", {"retry_after": 1})
        markup = form.get("reply_markup")
        self.sent.append(
            Sent(
                chat_id=chat_id,
                text=str(form["text"]),
                parse_mode=form.get("parse_mode"),
                reply_markup=json.loads(markup) if markup else None,
                at=time.monotonic(),
            )
        )
        chat_type = "private" if chat_id > 0 else "supergroup"
        result = {
            "message_id": len(self.sent),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type},
            "text": form["text"],
        }
        return web.json_response({"ok": True, "result": result})

    def _over_limit(self, chat_id: int) -> bool:
        assert self.enforce_scale is not None
        now = time.monotonic()
        while self._recent and self._recent[0] <= now - 1.0:
            self._recent.popleft()
        last = self._chat_last.get(chat_id)
        if len(self._recent) >= 30 * self.enforce_scale or (
            chat_id > 0 and last is not None and now - last < 1.0 / self.enforce_scale
        ):
            return True
        self._recent.append(now)
        self._chat_last[chat_id] = now
        return False

    def _take_fault(self, chat_id: int) -> dict[str, Any] | None:
        for key in (chat_id, None):
            queue = self._faults.get(key)
            if queue:
                return queue.pop(0)
        return None


async def _fields(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        data: dict[str, Any] = await request.json()
        return data
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


async def _serve(port: int, scale: float | None) -> None:
    """Run the fake on its own, with GET /stats, for tests that need it in another process."""
    fake = FakeTelegram(enforce_scale=scale)

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(
            {
                "sent": len(fake.sent),
                "chats": sorted({s.chat_id for s in fake.sent}),
                "rejected": fake.rejected,
                "first": fake.sent[0].at if fake.sent else None,
                "last": fake.sent[-1].at if fake.sent else None,
            }
        )

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", fake._handle)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    import sys

    scale_arg = float(sys.argv[2]) if len(sys.argv) > 2 else None
    asyncio.run(_serve(int(sys.argv[1]), scale_arg))
