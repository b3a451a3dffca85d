"""The Telegram rate limiter with an injected clock."""

from __future__ import annotations

from alerts.delivery.ratelimit import Limits, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_no_second_holds_more_than_the_cap() -> None:
    clock = Clock()
    limiter = RateLimiter(Limits(bot_per_second=30), clock=clock)
    sent: list[float] = []
    chat = 1
    while clock.t < 110:
        if limiter.delay(chat) <= 0.001:
            limiter.book(chat)
            sent.append(clock.t)
            chat += 1
        clock.t += 0.001
    worst = max(sum(1 for t in sent if start <= t < start + 1) for start in sent)
    # One under the cap in any second of our clock: one message of jitter on the way to
    # Telegram still keeps its window within the cap.
    assert worst <= 29
    assert len(sent) / 10 >= 0.93 * 30


def test_private_chats_get_one_message_a_second_and_groups_twenty_a_minute() -> None:
    clock = Clock()
    limiter = RateLimiter(Limits(bot_per_second=1000), clock=clock)
    limiter.book(5)
    assert 0.99 < limiter.delay(5) <= 1.0
    assert limiter.delay(6) == 0
    for _ in range(20):
        limiter.book(-7)
    assert limiter.delay(-7) > 59
    clock.t += 60.001
    assert limiter.delay(-7) == 0


def test_retry_after_pauses_the_chat_and_several_chats_pause_the_bot() -> None:
    clock = Clock()
    limiter = RateLimiter(Limits(bot_per_second=1000), clock=clock)
    limiter.flooded(5, 1)
    assert limiter.delay(1) == 5 and limiter.delay(2) == 0  # one chat: only that chat waits
    limiter.flooded(5, 2)
    limiter.flooded(5, 3)
    assert limiter.delay(99) == 5  # three chats within a second: the whole bot waits
