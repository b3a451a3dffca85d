"""Telegram's limits, kept on our side: about 30 messages a second per bot, one a second per
private chat, 20 a minute per group; and any `retry_after` Telegram asks for, per chat or
for the whole bot."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# A second and the millisecond a wait may be cut short by (see `acquire`).
_WINDOW = 1.01


@dataclass(frozen=True)
class Limits:
    """Telegram's caps: messages a second for the bot (never exceeded in any one-second
    window), the interval per private chat, messages a minute per group."""

    bot_per_second: float = 30.0
    private_interval: float = 1.0
    group_per_minute: int = 20
    group_window: float = 60.0


class RateLimiter:
    """Waits until a message to `chat_id` is within every limit, then books it."""

    def __init__(self, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic):
        self.limits = limits or Limits()
        self.clock = clock
        cap = self.limits.bot_per_second
        # A token bucket refilled at 95% of the cap, holding a message and a half at 30/s (two
        # at higher caps): sends go nearly evenly spaced, so that it takes a long stall on the
        # way to Telegram to bunch two, while a send that went out late still makes up for it.
        self._capacity = min(2.0, max(1.5, cap * 0.05))
        self._rate = cap * 0.95  # headroom: arrival jitter must not add up past the cap
        # And never more than the cap less one in any second of our own clock: the bucket
        # alone allows its capacity on top of a second's rate, which jitter on the way to
        # Telegram could turn into one message over the cap.
        self._window_cap = max(1, math.ceil(cap) - 1)
        self._window: deque[float] = deque()
        self._tokens = self._capacity
        self._filled_at = self.clock()
        self._chat_next: dict[int, float] = {}
        self._groups: dict[int, deque[float]] = {}
        self._paused_until = 0.0
        self._floods: deque[tuple[float, int]] = deque()

    def flooded(self, seconds: float, chat_id: int) -> None:
        """A 429 for `chat_id`. Telegram does not say whether a limit is the chat's or the
        bot's; when several chats are refused within a second, it is the bot's: pause all."""
        now = self.clock()
        self.pause(seconds, chat_id)
        recent = self._floods
        recent.append((now, chat_id))
        while recent and recent[0][0] <= now - 1.0:
            recent.popleft()
        if len({chat for _, chat in recent}) >= 3:
            self.pause(seconds)

    def pause(self, seconds: float, chat_id: int | None = None) -> None:
        """Honour a `retry_after`: for one chat, or (no chat) for the whole bot."""
        until = self.clock() + seconds
        if chat_id is None:
            self._paused_until = max(self._paused_until, until)
        else:
            self._chat_next[chat_id] = max(self._chat_next.get(chat_id, 0.0), until)

    def _refill(self, now: float) -> float:
        elapsed = max(0.0, now - self._filled_at)
        self._filled_at = now
        self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
        return self._tokens

    def chat_delay(self, chat_id: int) -> float:
        """Seconds until `chat_id` itself may receive (its own limits and pauses only)."""
        now = self.clock()
        ready = max(self._paused_until, self._chat_next.get(chat_id, 0.0))
        if chat_id < 0:
            sent = self._groups.get(chat_id)
            if sent:
                while sent and sent[0] <= now - self.limits.group_window:
                    sent.popleft()
                if len(sent) >= self.limits.group_per_minute:
                    ready = max(ready, sent[0] + self.limits.group_window)
        return max(0.0, ready - now)

    def delay(self, chat_id: int) -> float:
        """Seconds until a message to `chat_id` may go (0 if now)."""
        now = self.clock()
        wait = self.chat_delay(chat_id)
        tokens = self._refill(now)
        if tokens < 1.0:
            wait = max(wait, (1.0 - tokens) / self._rate)
        window = self._window
        while window and window[0] <= now - _WINDOW:
            window.popleft()
        if len(window) >= self._window_cap:
            wait = max(wait, window[0] + _WINDOW - now)
        return wait

    def book(self, chat_id: int) -> None:
        """Count a message to `chat_id` as sent now."""
        now = self.clock()
        self._tokens = self._refill(now) - 1.0
        self._window.append(now)
        if chat_id < 0:
            self._groups.setdefault(chat_id, deque()).append(now)
        else:
            self._chat_next[chat_id] = now + self.limits.private_interval

    async def chat_ready(self, chat_id: int) -> None:
        """Wait until `chat_id`'s own limits allow a message (without taking a slot)."""
        while (wait := self.chat_delay(chat_id)) > 0.001:  # noqa: ASYNC110  (a timed wait)
            await asyncio.sleep(wait)

    async def acquire(self, chat_id: int) -> None:
        """Wait for a slot for `chat_id` and take it. Checking and booking happen with no await
        in between, so concurrent callers never both take the same slot; a chat that must wait
        holds up no other chat."""
        # Waits under a millisecond are not slept: asyncio cannot sleep that short, and at
        # high configured rates every message would cost a loop turn.
        while (wait := self.delay(chat_id)) > 0.001:  # noqa: ASYNC110  (a timed wait)
            await asyncio.sleep(wait)
        self.book(chat_id)
