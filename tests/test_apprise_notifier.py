"""The Apprise notifier against local HTTP receivers, through real Apprise json:// plugins:
real concurrency up to its bound and never above it, a timeout per call, the outcome mapped to
retry or not with the reason from Apprise's log (secrets removed), per send."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message

MESSAGE = Message(title="BTC alert", text="BTC-USDT crossed 70000 up", html="", rule_id=1)


class Receiver:
    """A json:// endpoint: answers `statuses` in turn (then 200) after `delay` seconds, and
    records the bodies it accepted and the most requests it held at once."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.delay = 0.0
        self.bodies: list[dict[str, Any]] = []
        self.active = 0
        self.peak = 0
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            await asyncio.sleep(self.delay)
            status = self.statuses.pop(0) if self.statuses else 200
            if status == 200:
                self.bodies.append(await request.json())
            return web.Response(status=status)
        finally:
            self.active -= 1

    def url(self, credentials: str = "") -> str:
        return f"json://{credentials}127.0.0.1:{self.port}/hook"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    app = web.Application()
    app.router.add_post("/hook", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield hook
    await runner.cleanup()


async def test_a_message_arrives_as_apprise_json(receiver: Receiver) -> None:
    await AppriseNotifier().send(receiver.url(), MESSAGE)
    [body] = receiver.bodies
    assert body["title"] == "BTC alert" and body["message"] == "BTC-USDT crossed 70000 up"


async def test_sends_run_concurrently_up_to_the_bound_and_never_above(
    receiver: Receiver,
) -> None:
    """Twelve sends to an endpoint that takes 0.5 s each: all at once with a bound of 12
    (Apprise's own pool would run 6 on a 2-core machine), four at a time with a bound of 4."""
    receiver.delay = 0.5
    notifier = AppriseNotifier(concurrency=12)
    await asyncio.gather(*(notifier.send(receiver.url(), MESSAGE) for _ in range(12)))
    assert receiver.peak == 12

    receiver.peak = 0
    notifier = AppriseNotifier(concurrency=4)
    await asyncio.gather(*(notifier.send(receiver.url(), MESSAGE) for _ in range(12)))
    assert receiver.peak == 4 and len(receiver.bodies) == 24


async def test_a_send_that_outlives_its_timeout_keeps_its_slot(receiver: Receiver) -> None:
    """The caller hears "no answer" after the timeout, but the thread cannot be stopped: the
    next send waits for it, so that no more than `concurrency` sends ever run."""
    receiver.delay = 1.5
    notifier = AppriseNotifier(concurrency=1, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(SendFailed) as failed:
        await notifier.send(receiver.url(), MESSAGE)
    assert failed.value.retry and "no answer within 0.2 s" in failed.value.reason
    assert time.monotonic() - started < 1.2
    receiver.delay = 0.0
    await notifier.send(receiver.url(), MESSAGE)
    assert receiver.peak == 1 and len(receiver.bodies) == 2
    assert time.monotonic() - started >= 1.5


@pytest.mark.parametrize(
    ("status", "retry"), [(500, True), (503, True), (429, True), (404, False), (401, False)]
)
async def test_the_status_decides_retry_and_the_reason_has_no_secret(
    receiver: Receiver, status: int, retry: bool
) -> None:
    receiver.statuses = [status]
    url = receiver.url("hookuser:SECRETPASS@")
    with pytest.raises(SendFailed) as failed:
        await AppriseNotifier().send(url, MESSAGE)
    assert failed.value.retry is retry
    assert str(status) in failed.value.reason
    assert "SECRETPASS" not in failed.value.reason and "hookuser" not in failed.value.reason


async def test_a_500_then_a_200_is_a_retry_then_sent(receiver: Receiver) -> None:
    receiver.statuses = [500]
    notifier = AppriseNotifier()
    with pytest.raises(SendFailed) as failed:
        await notifier.send(receiver.url(), MESSAGE)
    assert failed.value.retry
    await notifier.send(receiver.url(), MESSAGE)
    assert len(receiver.bodies) == 1


async def test_concurrent_failures_each_get_their_own_reason() -> None:
    """Apprise logs from the sending threads; each send still reads only its own log."""
    statuses = [404, 500] * 4
    hooks: list[Receiver] = []
    runners: list[web.AppRunner] = []
    for status in statuses:
        hook = Receiver()
        hook.statuses, hook.delay = [status], 0.05
        app = web.Application()
        app.router.add_post("/hook", hook.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        hook.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        hooks.append(hook)
        runners.append(runner)
    try:
        notifier = AppriseNotifier()
        results = await asyncio.gather(
            *(notifier.send(h.url(), MESSAGE) for h in hooks), return_exceptions=True
        )
    finally:
        for runner in runners:
            await runner.cleanup()
    for status, result in zip(statuses, results, strict=True):
        assert isinstance(result, SendFailed)
        assert str(status) in result.reason and result.retry is (status == 500)


async def test_the_emojis_option_still_applies(receiver: Receiver) -> None:
    message = Message(title="t", text="filled :rocket:", html="", rule_id=None)
    await AppriseNotifier().send(receiver.url() + "?emojis=yes", message)
    assert receiver.bodies[0]["message"] == "filled 🚀"


async def test_a_url_apprise_cannot_use_is_not_retried() -> None:
    with pytest.raises(SendFailed) as failed:
        await AppriseNotifier().send("nosuchscheme://SECRETQ", MESSAGE)
    assert not failed.value.retry and "SECRETQ" not in failed.value.reason
