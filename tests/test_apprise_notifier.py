"""The Apprise notifier against local HTTP receivers, through real Apprise json:// plugins:
real concurrency up to its bound and never above it, a timeout per call, the outcome mapped to
retry or not with a coarse reason (no host, path or secret), per send; local addresses refused
unless private targets are allowed. Each test runs with the sends in threads of this process
and in helper processes (the service's default). The receivers are local, so the notifiers
allow private targets except where a test says otherwise."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message
from tests.webhook import Receiver, serving

MESSAGE = Message(title="BTC alert", text="BTC-USDT crossed 70000 up", html="", rule_id=1)


Make = Callable[..., AppriseNotifier]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with serving(Receiver()) as hook:
        yield hook


@pytest.fixture(params=[0, 2], ids=["threads", "processes"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    """Notifiers sending in threads, or in two helper processes; closed after the test."""
    made: list[AppriseNotifier] = []

    def factory(**options: Any) -> AppriseNotifier:
        options.setdefault("allow_private", True)
        made.append(AppriseNotifier(processes=request.param, **options))
        return made[-1]

    yield factory
    for notifier in made:
        await notifier.close()


async def test_a_message_arrives_as_apprise_json(receiver: Receiver, make: Make) -> None:
    await make().send(receiver.url(), MESSAGE)
    [body] = receiver.bodies
    assert body["title"] == "BTC alert" and body["message"] == "BTC-USDT crossed 70000 up"


async def test_sends_run_concurrently_up_to_the_bound_and_never_above(
    receiver: Receiver, make: Make
) -> None:
    """Twelve sends to an endpoint that takes 0.5 s each: all at once with a bound of 12
    (Apprise's own pool would run 6 on a 2-core machine), four at a time with a bound of 4."""
    receiver.delay = 0.5
    notifier = make(concurrency=12)
    await asyncio.gather(*(notifier.send(receiver.url(), MESSAGE) for _ in range(12)))
    assert receiver.peak == 12

    receiver.peak = 0
    notifier = make(concurrency=4)
    await asyncio.gather(*(notifier.send(receiver.url(), MESSAGE) for _ in range(12)))
    assert receiver.peak == 4 and len(receiver.bodies) == 24


async def test_a_send_that_outlives_its_timeout_keeps_its_slot(
    receiver: Receiver, make: Make
) -> None:
    """The caller hears "no answer" after the timeout, but the send cannot be stopped: the
    next send waits for it, so that no more than `concurrency` sends ever run."""
    notifier = make(concurrency=1)
    await notifier.send(receiver.url(), MESSAGE)  # Apprise's plugins loaded (or a helper up)
    notifier.timeout = 0.2
    receiver.delay = 1.5
    started = time.monotonic()
    with pytest.raises(SendFailed) as failed:
        await notifier.send(receiver.url(), MESSAGE)
    assert failed.value.retry and "no answer within 0.2 s" in failed.value.reason
    assert time.monotonic() - started < 1.2
    receiver.delay = 0.0
    await notifier.send(receiver.url(), MESSAGE)
    assert receiver.peak == 1 and len(receiver.bodies) == 3
    assert time.monotonic() - started >= 1.5


@pytest.mark.parametrize(
    ("status", "retry"), [(500, True), (503, True), (429, True), (404, False), (401, False)]
)
async def test_the_status_decides_retry_and_the_reason_has_no_secret(
    receiver: Receiver, status: int, retry: bool, make: Make
) -> None:
    receiver.statuses = [status]
    url = receiver.url("hookuser:SECRETPASS@")
    with pytest.raises(SendFailed) as failed:
        await make().send(url, MESSAGE)
    assert failed.value.retry is retry
    assert failed.value.reason == f"HTTP {status}"  # no host, no path, no secret


async def test_a_500_then_a_200_is_a_retry_then_sent(receiver: Receiver, make: Make) -> None:
    receiver.statuses = [500]
    notifier = make()
    with pytest.raises(SendFailed) as failed:
        await notifier.send(receiver.url(), MESSAGE)
    assert failed.value.retry
    await notifier.send(receiver.url(), MESSAGE)
    assert len(receiver.bodies) == 1


async def test_concurrent_failures_each_get_their_own_reason(make: Make) -> None:
    """Apprise logs from the sending threads; each send still reads only its own log."""
    statuses = [404, 500] * 4
    hooks = [Receiver() for _ in statuses]
    for hook, status in zip(hooks, statuses, strict=True):
        hook.statuses, hook.delay = [status], 0.05
    async with contextlib.AsyncExitStack() as stack:
        for hook in hooks:
            await stack.enter_async_context(serving(hook))
        notifier = make()
        results = await asyncio.gather(
            *(notifier.send(h.url(), MESSAGE) for h in hooks), return_exceptions=True
        )
    for status, result in zip(statuses, results, strict=True):
        assert isinstance(result, SendFailed)
        assert result.reason == f"HTTP {status}" and result.retry is (status == 500)


async def test_the_emojis_option_still_applies(receiver: Receiver, make: Make) -> None:
    message = Message(title="t", text="filled :rocket:", html="", rule_id=None)
    await make().send(receiver.url() + "?emojis=yes", message)
    assert receiver.bodies[0]["message"] == "filled 🚀"


async def test_a_url_apprise_cannot_use_is_not_retried(make: Make) -> None:
    with pytest.raises(SendFailed) as failed:
        await make().send("nosuchscheme://SECRETQ", MESSAGE)
    assert not failed.value.retry and "SECRETQ" not in failed.value.reason


async def test_a_local_address_is_refused_at_once_and_never_retried(
    receiver: Receiver, make: Make
) -> None:
    notifier = make(allow_private=False)
    for url in (receiver.url(), receiver.url().replace("127.0.0.1", "localhost")):
        with pytest.raises(SendFailed) as failed:
            await notifier.send(url, MESSAGE)
        assert failed.value.reason == "address not allowed" and not failed.value.retry
    assert receiver.peak == 0 and receiver.bodies == []  # not even a connection
    await make(allow_private=True).send(receiver.url(), MESSAGE)
    assert len(receiver.bodies) == 1


async def test_a_connection_failure_says_only_that(make: Make) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(SendFailed) as failed:
        await make().send(f"json://127.0.0.1:{port}/SECRETPATH", MESSAGE)
    assert failed.value.reason == "connection failed" and failed.value.retry


def _helper_pids() -> list[int]:
    """This process's Apprise helper processes, from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except (OSError, IndexError, ValueError):
            continue
        if parent == os.getpid() and b"alerts.delivery.apprise_processes" in command:
            pids.append(int(entry))
    return pids


async def test_a_helper_that_dies_fails_its_sends_for_a_retry_and_is_replaced(
    receiver: Receiver,
) -> None:
    notifier = AppriseNotifier(processes=1, allow_private=True)
    try:
        await notifier.send(receiver.url(), MESSAGE)
        [pid] = _helper_pids()
        receiver.delay = 2.0
        sending = asyncio.create_task(notifier.send(receiver.url(), MESSAGE))
        await receiver.holding(1)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(SendFailed) as failed:
            await sending
        assert failed.value.retry and "helper process stopped" in failed.value.reason
        receiver.delay = 0.0
        await notifier.send(receiver.url(), MESSAGE)  # a new helper
        assert _helper_pids() and pid not in _helper_pids()
    finally:
        await notifier.close()
    assert _helper_pids() == []


async def test_closing_ends_the_helpers_after_their_sends(receiver: Receiver) -> None:
    # Each send held long enough that all four are in flight at once even when the second
    # helper is slow to start (a loaded CI machine); bounded, so a miss fails, never hangs.
    receiver.delay = 3.0
    notifier = AppriseNotifier(processes=2, allow_private=True)
    sends = [asyncio.create_task(notifier.send(receiver.url(), MESSAGE)) for _ in range(4)]
    async with asyncio.timeout(30):
        await receiver.holding(4)
    assert len(_helper_pids()) == 2
    await notifier.close()
    await asyncio.gather(*sends)
    assert len(receiver.bodies) == 4 and _helper_pids() == []


async def test_a_helper_gets_no_secret_of_the_service(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A helper runs plugins against users' URLs: the service's settings stay out of its
    environment; what a send needs (proxies, trust store, locale) is there."""
    secrets = {
        "TELEGRAM_BOT_TOKEN": "123:bot-token-secret",
        "ALERTS_SECRET_KEY": "secret-key-secret",
        "DATABASE_URL": "postgresql://alerts:db-password-secret@db/alerts",
        "XROCKET_API_TOKEN": "exchange-token-secret",
    }
    needed = {"NO_PROXY": "example.org", "SSL_CERT_DIR": "/etc/ssl/certs", "LC_ALL": "C.UTF-8"}
    for name, value in {**secrets, **needed}.items():
        monkeypatch.setenv(name, value)
    notifier = AppriseNotifier(processes=1, allow_private=True)
    try:
        await notifier.send(receiver.url(), MESSAGE)
        [pid] = _helper_pids()
        environ = await asyncio.to_thread(Path(f"/proc/{pid}/environ").read_bytes)
        seen = dict(entry.decode().split("=", 1) for entry in environ.split(b"\0") if entry)
    finally:
        await notifier.close()
    assert not set(secrets) & set(seen)
    assert not any("secret" in value for value in seen.values())
    assert {name: seen.get(name) for name in needed} == needed


async def test_a_helper_keeps_its_connection_but_no_cookie_from_send_to_send(
    receiver: Receiver,
) -> None:
    """Sends one after another from a helper reuse its connection to the host; a cookie the
    receiver set never comes back with the next send (that may be another user's)."""
    receiver.set_cookie = "session=SET-FOR-THE-FIRST-SEND; Path=/"
    notifier = AppriseNotifier(processes=1, allow_private=True)
    try:
        for _ in range(3):
            await notifier.send(receiver.url(), MESSAGE)
    finally:
        await notifier.close()
    assert len(receiver.bodies) == 3 and receiver.cookies == [None, None, None]
    assert len(set(receiver.peers)) == 1


async def test_a_kept_connection_the_receiver_closed_costs_no_attempt() -> None:
    receiver = Receiver()
    async with serving(receiver, keepalive=0.05):
        notifier = AppriseNotifier(processes=1, allow_private=True)
        try:
            await notifier.send(receiver.url(), MESSAGE)
            await asyncio.sleep(0.3)  # the receiver closes the idle connection meanwhile
            await notifier.send(receiver.url(), MESSAGE)  # raises if the attempt failed
        finally:
            await notifier.close()
    assert len(receiver.bodies) == 2 and len(set(receiver.peers)) == 2
