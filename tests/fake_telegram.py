"""A local fake of the Telegram Bot API over real HTTP, for aiogram pointed at it.

It records every sendMessage and can be told to answer the next request for a chat with an
error (429 with retry_after, 403, 400, 5xx, a migration, or a delay past the client's timeout).
For the bot, it plays the users too: `say`, `post` (in a channel) and `press` queue updates
that getUpdates (long polling) hands out, getChatMember answers from `admins`, and every other
method call is kept in `calls`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.feed_helpers import eventually

TOKEN = "123456:TEST-bot-token-SECRET"


BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Alerts", "username": "alerts_bot"}


@dataclass
class Sent:
    chat_id: int
    text: str
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    at: float
    message_id: int = 0
    paid: bool = False  # sent with allow_paid_broadcast

    def buttons(self) -> dict[str, str]:
        """Each inline button's text and callback data."""
        rows = (self.reply_markup or {}).get("inline_keyboard", [])
        return {b["text"]: b.get("callback_data", "") for row in rows for b in row}


CHANNELS_BELOW = -1_009_000_000_000  # chat ids under this are channels, the rest groups


def _chat(chat_id: int) -> dict[str, Any]:
    if chat_id > 0:
        return {"id": chat_id, "type": "private", "first_name": f"user{chat_id}"}
    if chat_id < CHANNELS_BELOW:
        return {"id": chat_id, "type": "channel", "title": f"channel{chat_id}"}
    return {"id": chat_id, "type": "supergroup", "title": f"group{chat_id}"}


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
    #: Every method other than sendMessage and getUpdates, with its fields.
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _update_id: int = 0
    _message_id: int = 1000
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    #: Per group, the user ids getChatMember calls administrators (everyone else: member).
    admins: dict[int, set[int]] = field(default_factory=dict)
    #: Serve HTTPS with this context (a self-hosted Bot API server behind its own CA).
    tls: ssl.SSLContext | None = None

    def say(self, user_id: int, text: str, chat_id: int | None = None) -> int:
        """A user writes `text` (in their private chat, or in group `chat_id`); the message id."""
        sender = {"from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}}
        return self._write("message", chat_id if chat_id is not None else user_id, text, sender)

    def post(self, chat_id: int, text: str) -> int:
        """A channel's administrator posts `text` in the channel (no sender); the message id."""
        return self._write("channel_post", chat_id, text, {"sender_chat": _chat(chat_id)})

    def _write(self, kind: str, chat_id: int, text: str, sender: dict[str, Any]) -> int:
        self._message_id += 1
        message = {
            "message_id": self._message_id,
            "date": int(time.time()),
            "chat": _chat(chat_id),
            **sender,
            "text": text,
        }
        if text.startswith("/"):
            length = len(text.split()[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        self._push({kind: message})
        return self._message_id

    async def ask(self, user_id: int, text: str, chat_id: int | None = None) -> Sent:
        """A user writes `text` (see `say`, or `post` for a channel's chat id) and waits for the
        bot's reply in that chat."""
        where = chat_id if chat_id is not None else user_id
        before = len(self.texts(where))
        if where < CHANNELS_BELOW:
            self.post(where, text)
        else:
            self.say(user_id, text, chat_id=chat_id)
        await eventually(lambda: len(self.texts(where)) > before, message=f"reply to {text}")
        return [s for s in self.sent if s.chat_id == where][before]

    def press(self, user_id: int, sent: Sent, button: str) -> str:
        """A user presses the button labelled `button` under a message; the query id."""
        return self.press_data(user_id, sent, sent.buttons()[button])

    def press_data(self, user_id: int, sent: Sent, data: str) -> str:
        """A user's client sends a button press with `data` (a forged one, say); the query id."""
        query_id = f"q{self._update_id + 1}"
        message = {
            "message_id": sent.message_id,
            "date": int(time.time()),
            "chat": _chat(sent.chat_id),
            "from": BOT_USER,
            "text": sent.text,
        }
        self._push(
            {
                "callback_query": {
                    "id": query_id,
                    "from": {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"},
                    "chat_instance": "1",
                    "data": data,
                    "message": message,
                }
            }
        )
        return query_id

    def _push(self, update: dict[str, Any]) -> None:
        self._update_id += 1
        self._updates.append({"update_id": self._update_id, **update})
        self._arrived.set()

    def _edit(self, form: dict[str, Any]) -> None:
        for sent in self.sent:
            if sent.message_id == int(form["message_id"]):
                sent.text = str(form["text"])
                markup = form.get("reply_markup")
                sent.reply_markup = json.loads(markup) if isinstance(markup, str) else markup

    def called(self, method: str) -> list[dict[str, Any]]:
        """The fields of every call of `method`."""
        return [fields for name, fields in self.calls if name == method]

    async def _get_updates(self, form: dict[str, Any]) -> web.Response:
        offset = int(form.get("offset") or 0)
        deadline = time.monotonic() + float(form.get("timeout") or 0)
        while True:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            if self._updates or time.monotonic() >= deadline:
                return web.json_response({"ok": True, "result": self._updates})
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), deadline - time.monotonic())

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
        self._runner = web.AppRunner(app, access_log=None)  # its lines hold the bot token
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.tls)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if request.match_info["token"] != TOKEN:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        form = await _fields(request)
        if method == "getUpdates":
            return await self._get_updates(form)
        if method != "sendMessage":
            self.calls.append((method, form))
            if method == "getMe":
                return web.json_response({"ok": True, "result": BOT_USER})
            if method == "getChatMember":
                user = int(form["user_id"])
                admin = user in self.admins.get(int(form["chat_id"]), set())
                member = {
                    "status": "administrator" if admin else "member",
                    "user": {"id": user, "is_bot": False, "first_name": f"user{user}"},
                }
                if admin:
                    member.update(
                        {
                            "can_be_edited": False, "is_anonymous": False,
                            "can_manage_chat": True, "can_delete_messages": True,
                            "can_manage_video_chats": True, "can_restrict_members": True,
                            "can_promote_members": False, "can_change_info": True,
                            "can_invite_users": True, "can_post_stories": False,
                            "can_edit_stories": False, "can_delete_stories": False,
                            "can_send_welcome_messages": False,
                        }
                    )  # fmt: skip
                return web.json_response({"ok": True, "result": member})
            if method == "editMessageText":
                self._edit(form)
                message = {
                    "message_id": int(form["message_id"]),
                    "date": int(time.time()),
                    "chat": _chat(int(form["chat_id"])),
                    "text": form["text"],
                }
                return web.json_response({"ok": True, "result": message})
            return web.json_response({"ok": True, "result": True})
        chat_id = int(form["chat_id"])
        fault = self._take_fault(chat_id)
        if fault:
            if "delay" in fault:
                await asyncio.sleep(fault["delay"])
            if "drop" in fault:  # the connection breaks before an answer
                assert request.transport is not None
                request.transport.close()
                return web.Response(status=500)
            if "page" in fault:  # not the Bot API's JSON: a proxy's error page
                return web.Response(status=fault["status"], text=fault["page"])
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
        self._message_id += 1
        self.sent.append(
            Sent(
                chat_id=chat_id,
                text=str(form["text"]),
                parse_mode=form.get("parse_mode"),
                reply_markup=json.loads(markup) if isinstance(markup, str) else markup,
                at=time.monotonic(),
                message_id=self._message_id,
                paid=form.get("allow_paid_broadcast") in (True, "true"),
            )
        )
        result = {
            "message_id": self._message_id,
            "date": int(time.time()),
            "chat": _chat(chat_id),
            "from": BOT_USER,
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
