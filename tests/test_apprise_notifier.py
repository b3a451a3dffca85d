"""The Apprise notifier against local HTTP receivers, through real Apprise json:// plugins:
real concurrency up to its bound and never above it, a timeout per call, the outcome mapped to
retry or not with the reason from Apprise's log (secrets removed), per send."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message
from tests.webhook import Receiver, serving

MESSAGE = Message(title="BTC alert", text="BTC-USDT crossed 70000 up", html="", rule_id=1)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving(Receiver()) as hook:
        yield hook


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
    hooks = [Receiver() for _ in statuses]
    for hook, status in zip(hooks, statuses, strict=True):
        hook.statuses, hook.delay = [status], 0.05
    async with contextlib.AsyncExitStack() as stack:
        for hook in hooks:
            await stack.enter_async_context(serving(hook))
        notifier = AppriseNotifier()
        results = await asyncio.gather(
            *(notifier.send(h.url(), MESSAGE) for h in hooks), return_exceptions=True
        )
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
