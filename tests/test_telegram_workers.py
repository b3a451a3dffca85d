"""Telegram's limits hold in total across worker processes: three `alerts worker` on one
PostgreSQL database send one push's alerts to 300 chats through a fake Bot API (its own
process) that answers 429 to anything over Telegram's real limits. None is refused, each
chat gets its alert once, and the rate is printed (`bench/telegram_workers.py` runs 3,000
chats and judges it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import _postgres_database
from tests.telegram_workers import run
from tests.test_cli import free_port


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from _postgres_database()


async def test_three_workers_keep_telegrams_limits_together(postgres_url: str) -> None:
    chats = list(range(70_000, 70_300))
    result = await run(postgres_url, chats, workers=3, port=free_port())
    print(f"{result.sent} messages at {result.rate:.1f}/s, {result.rejected} refused with 429")
    assert result.rejected == 0, result.rejected
    missing = sorted(set(result.expected) - set(result.chats))
    assert result.chats == result.expected, f"not sent to {missing[:20]}"
    assert result.sent == len(chats), f"{result.sent - len(chats)} sent twice"
