"""Delivery through a local fake Bot API server and real Apprise targets, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from alerts.db import queue
from alerts.db.migrate import upgrade
from alerts.db.models import Delivery, DeliveryAttempt, Destination, Rule, User
from alerts.db.outbox import record_event
from alerts.db.queue import claim
from alerts.db.session import Database
from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.ratelimit import Limits, RateLimiter
from alerts.delivery.telegram import TelegramNotifier
from alerts.delivery.worker import DeliveryWorker, WorkerConfig
from alerts.feed.backoff import Backoff
from alerts.security import SecretBox
from tests.api_helpers import SECRET_KEY
from tests.clocks import Clock
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import eventually
from tests.telegram_workers import wait_for_fake
from tests.test_cli import free_port
from tests.webhook import Receiver, serving

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]
CHAT = 4242


def _local_apprise() -> AppriseNotifier:
    """The receivers here are local: as with ALERTS_ALLOW_PRIVATE_TARGETS=true."""
    return AppriseNotifier(allow_private=True)


@dataclass
class Setup:
    db: Database
    tg: FakeTelegram
    worker: DeliveryWorker
    clock: Clock
    user_id: int
    rule_id: int
    chat: int

    def fire(self, destination_id: int, **values: Any) -> int:
        """An event with one pending delivery, as the engine records it."""
        with self.db.session() as session:
            rule = session.get(Rule, self.rule_id)
            assert rule is not None
            _, [delivery] = record_event(
                session,
                user_id=self.user_id,
                rule_id=self.rule_id,
                rule_name=rule.name,
                kind="price_cross",
                symbol="BTC-USDT",
                values={
                    "symbol": "BTC-USDT",
                    "price": "70100",
                    "previous": "69900",
                    "level": "70000",
                    "direction": "up",
                    **values,
                },
                destination_ids=[destination_id],
                now=self.clock(),
            )
            session.commit()
            assert delivery.id is not None
            return delivery.id

    def delivery(self, delivery_id: int) -> Delivery:
        with self.db.session() as session:
            row = session.get(Delivery, delivery_id)
            assert row is not None
            return row

    def destination(self, destination_id: int) -> Destination:
        with self.db.session() as session:
            row = session.get(Destination, destination_id)
            assert row is not None
            return row

    def add_destination(self, **fields: Any) -> int:
        with self.db.session() as session:
            row = Destination(user_id=self.user_id, name="d", **fields)
            session.add(row)
            session.commit()
            assert row.id is not None
            return row.id


@pytest.fixture
async def setup(database_url: str) -> AsyncIterator[Setup]:
    upgrade(database_url)
    db = Database(database_url)
    with db.session() as session:
        user = User(name="alice", telegram_user_id=CHAT)
        session.add(user)
        session.flush()
        assert user.id is not None
        rule = Rule(
            user_id=user.id,
            kind="price_cross",
            name="BTC <above> & beyond",
            symbol="BTC-USDT",
            params={"symbol": "BTC-USDT", "level": "70000"},
        )
        session.add(rule)
        session.commit()
        user_id, rule_id = user.id, rule.id or 0
    async with FakeTelegram() as tg:
        clock = Clock(T0)
        fast = Limits(bot_per_second=1000, private_interval=0.0, group_per_minute=1000)
        # Real time plus the test clock's jumps: a retry_after ends when the test says so.
        limiter = RateLimiter(
            fast, clock=lambda: time.monotonic() + (clock.now - T0).total_seconds()
        )
        telegram = TelegramNotifier(TOKEN, api_url=tg.url, limiter=limiter, timeout=0.5)
        config = WorkerConfig(backoff=Backoff(initial=5, maximum=60, factor=2, jitter=0.0))
        worker = DeliveryWorker(
            db,
            SecretBox(SECRET_KEY),
            telegram=telegram,
            apprise=_local_apprise(),
            config=config,
            clock=clock,
        )
        s = Setup(db, tg, worker, clock, user_id, rule_id, CHAT)
        yield s
        await telegram.close()
    db.dispose()


async def test_a_fired_alert_reaches_the_chat_escaped_with_buttons(setup: Setup) -> None:
    chat = setup.add_destination(kind="telegram", chat_id=CHAT)
    delivery = setup.fire(chat, symbol="<BTC>&USDT")
    assert await setup.worker.run_once()
    [sent] = setup.tg.sent
    assert sent.chat_id == CHAT and sent.parse_mode == "HTML"
    assert "<b>⬆️ BTC &lt;above&gt; &amp; beyond</b>" in sent.text
    assert "&lt;BTC&gt;&amp;USDT crossed 70000 up: now 70100 (was 69900)" in sent.text
    assert sent.reply_markup is not None
    buttons = sent.reply_markup["inline_keyboard"][0]
    assert [b["callback_data"] for b in buttons] == [
        f"snooze:{setup.rule_id}:3600",
        f"disable:{setup.rule_id}",
    ]
    row = setup.delivery(delivery)
    assert row.status == "sent" and row.attempts == 1 and row.sent_at is not None
    with setup.db.session() as session:
        [attempt] = session.exec(select(DeliveryAttempt)).all()
        assert attempt.outcome == "sent"
    assert not await setup.worker.run_once()  # nothing is sent twice


async def test_retry_after_is_honoured(setup: Setup) -> None:
    chat = setup.add_destination(kind="telegram", chat_id=CHAT)
    delivery = setup.fire(chat)
    setup.tg.fail_next(
        CHAT, status=429, description="Too Many Requests: retry after 30", retry_after=30
    )
    await setup.worker.run_once()
    row = setup.delivery(delivery)
    assert row.status == "failed" and "wait 30" in (row.last_error or "")
    assert row.next_attempt_at == T0 + timedelta(seconds=30)
    assert not await setup.worker.run_once()  # not due yet
    setup.clock.now = T0 + timedelta(seconds=31)  # the limiter's pause for the chat is over too
    assert await setup.worker.run_once()
    assert setup.delivery(delivery).status == "sent" and setup.delivery(delivery).attempts == 2


@pytest.mark.parametrize(
    ("fault", "status", "disabled"),
    [
        ({"status": 403, "description": "Forbidden: bot was blocked by the user"}, "dead", True),
        ({"status": 400, "description": "Bad Request: chat not found"}, "dead", True),
        ({"status": 400, "description": "Bad Request: can't parse entities"}, "dead", False),
        ({"status": 502, "description": "Bad Gateway"}, "failed", False),
        ({"delay": 1.0}, "failed", False),  # past the client's 0.5 s timeout
        ({"status": 502, "page": "<html>502 Bad Gateway</html>"}, "failed", False),
        ({"drop": True}, "failed", False),
    ],
)
async def test_each_failure_leads_to_the_right_state(
    setup: Setup, fault: dict[str, Any], status: str, disabled: bool
) -> None:
    chat = setup.add_destination(kind="telegram", chat_id=CHAT)
    delivery = setup.fire(chat)
    setup.tg.fail_next(CHAT, **fault)
    await setup.worker.run_once()
    row = setup.delivery(delivery)
    assert row.status == status, row.last_error
    destination = setup.destination(chat)
    assert destination.enabled is not disabled
    if disabled:
        assert destination.disabled_reason == fault["description"]
    if status == "failed":
        assert row.next_attempt_at == T0 + timedelta(seconds=5)


async def test_a_migrated_group_gets_its_new_chat_id(setup: Setup) -> None:
    chat = setup.add_destination(kind="telegram", chat_id=-555)
    delivery = setup.fire(chat)
    setup.tg.fail_next(-555, migrate_to=-100555)
    await setup.worker.run_once()
    assert setup.destination(chat).chat_id == -100555
    await setup.worker.run_once()
    assert setup.delivery(delivery).status == "sent"
    assert [s.chat_id for s in setup.tg.sent] == [-100555]


async def test_deliveries_past_the_max_age_are_given_up(setup: Setup) -> None:
    chat = setup.add_destination(kind="telegram", chat_id=CHAT)
    delivery = setup.fire(chat)
    setup.clock.now = T0 + timedelta(days=2)
    setup.tg.fail_next(CHAT, status=500, description="Internal Server Error")
    await setup.worker.run_once()
    row = setup.delivery(delivery)
    assert row.status == "dead" and "gave up after 1 attempts" in (row.last_error or "")


async def test_a_burst_for_one_chat_becomes_one_digest(setup: Setup) -> None:
    chat = setup.add_destination(kind="telegram", chat_id=CHAT)
    ids = [setup.fire(chat, level=str(70000 + i)) for i in range(8)]
    await setup.worker.run_once()
    [sent] = setup.tg.sent
    assert sent.text.startswith("<b>🔔 8 alerts</b>")
    assert sent.text.count("crossed") == 8
    assert all(setup.delivery(i).status == "sent" for i in ids)


async def test_a_crashed_workers_lease_is_taken_over(setup: Setup) -> None:
    chat = setup.add_destination(kind="telegram", chat_id=CHAT)
    delivery = setup.fire(chat)
    [job] = claim(setup.db, now=T0, lease=timedelta(seconds=60), limit=10)  # then it "dies"
    assert (
        claim(setup.db, now=T0 + timedelta(seconds=30), lease=timedelta(seconds=60), limit=10) == []
    )
    setup.clock.now = T0 + timedelta(seconds=61)
    assert await setup.worker.run_once()
    row = setup.delivery(delivery)
    assert row.status == "sent" and row.attempts == 2 and job.delivery_id == delivery


async def test_deleted_and_disabled_destinations_are_dead_with_the_reason(setup: Setup) -> None:
    chat = setup.add_destination(
        kind="telegram", chat_id=CHAT, enabled=False, disabled_reason="blocked"
    )
    delivery = setup.fire(chat)
    await setup.worker.run_once()
    row = setup.delivery(delivery)
    assert row.status == "dead" and "disabled (blocked)" in (row.last_error or "")


async def test_apprise_json_delivery_retries_a_500_then_succeeds(setup: Setup) -> None:
    receiver = Receiver()
    receiver.statuses = [500]
    async with serving(receiver):
        url = receiver.url("hookuser:SECRETPASS@")
        box = SecretBox(SECRET_KEY)
        hook = setup.add_destination(
            kind="apprise", url_sealed=box.seal(url), url_masked="json://..."
        )
        delivery = setup.fire(hook)
        await setup.worker.run_once()
        row = setup.delivery(delivery)
        assert row.status == "failed" and "SECRETPASS" not in (row.last_error or "")
        setup.clock.now = T0 + timedelta(seconds=6)
        await setup.worker.run_once()
        assert setup.delivery(delivery).status == "sent"
        [body] = receiver.bodies
        assert "BTC-USDT crossed 70000 up" in body["message"]
        assert body["title"].endswith("BTC <above> & beyond")


async def test_a_changed_apprise_url_is_used_from_the_next_delivery_on(setup: Setup) -> None:
    box = SecretBox(SECRET_KEY)
    first, second = Receiver(), Receiver()
    async with serving(first), serving(second):
        hook = setup.add_destination(
            kind="apprise", url_sealed=box.seal(first.url()), url_masked="json://..."
        )
        setup.fire(hook)
        await setup.worker.run_once()
        with setup.db.session() as session:  # as PATCH /v1/destinations/{id} stores it
            row = session.get(Destination, hook)
            assert row is not None
            row.url_sealed = box.seal(second.url())
            session.add(row)
            session.commit()
        setup.fire(hook)
        await setup.worker.run_once()
    assert (len(first.bodies), len(second.bodies)) == (1, 1)


@contextlib.asynccontextmanager
async def _running(
    setup: Setup, *, private_interval: float = 0.0, lease: float = 60.0
) -> AsyncIterator[DeliveryWorker]:
    """A worker running on real time with Telegram's per-chat pace as given."""
    limits = Limits(bot_per_second=1000, private_interval=private_interval)
    telegram = TelegramNotifier(TOKEN, api_url=setup.tg.url, limiter=RateLimiter(limits))
    config = WorkerConfig(poll_interval=0.02, lease=timedelta(seconds=lease))
    worker = DeliveryWorker(
        setup.db, SecretBox(SECRET_KEY), telegram=telegram, apprise=_local_apprise(), config=config
    )
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.stop()
        await task
        await telegram.close()


def _fail_once(monkeypatch: pytest.MonkeyPatch, target: Any, name: str) -> None:
    """`target.name` raises the first time it is called (a bug, a database hiccup)."""
    original = getattr(target, name)
    calls = 0

    def failing(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("injected failure")
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)


async def test_a_chat_waiting_for_its_turn_or_a_slow_webhook_holds_up_no_one_else(
    setup: Setup,
) -> None:
    """A running worker sends each alert as it comes, whatever else is still in flight: a
    second alert to a private chat waits for that chat's 1 s, and a webhook answers after
    2 s, but an alert to another chat meanwhile goes out at once."""
    other = setup.add_destination(kind="telegram", chat_id=5151)
    mine = setup.add_destination(kind="telegram", chat_id=CHAT)
    receiver = Receiver()
    receiver.delay = 2.0

    def statuses() -> list[str]:
        with setup.db.session() as session:
            return [d.status for d in session.exec(select(Delivery))]

    async with serving(receiver):
        hook = setup.add_destination(
            kind="apprise", url_sealed=SecretBox(SECRET_KEY).seal(receiver.url())
        )
        async with _running(setup, private_interval=1.0):
            setup.fire(mine)
            await eventually(lambda: len(setup.tg.sent) == 1, timeout=5, message="first")
            setup.fire(mine)  # waits for the chat's next slot, a second from now
            setup.fire(hook)  # answered in 2 s
            await asyncio.sleep(0.2)
            fired = time.monotonic()
            setup.fire(other)
            await eventually(lambda: len(setup.tg.sent) == 2, timeout=5, message="second")
            assert setup.tg.sent[1].chat_id == 5151
            assert time.monotonic() - fired < 0.6
            # Recorded as sent within about 0.1 s, though the webhook is still answering.
            await eventually(lambda: statuses().count("sent") == 2, timeout=0.5, message="recorded")
            await eventually(lambda: len(setup.tg.sent) == 3, timeout=5, message="third")
            assert setup.tg.sent[2].chat_id == CHAT
            await eventually(lambda: len(receiver.bodies) == 1, timeout=5, message="webhook")
    assert set(statuses()) == {"sent"}


async def test_stopping_gives_back_a_send_still_waiting_for_its_turn(setup: Setup) -> None:
    mine = setup.add_destination(kind="telegram", chat_id=CHAT)
    limits = Limits(bot_per_second=1000, private_interval=5.0)
    telegram = TelegramNotifier(TOKEN, api_url=setup.tg.url, limiter=RateLimiter(limits))
    config = WorkerConfig(poll_interval=0.02)
    worker = DeliveryWorker(
        setup.db, SecretBox(SECRET_KEY), telegram=telegram, apprise=_local_apprise(), config=config
    )
    task = asyncio.create_task(worker.run())
    try:
        first = setup.fire(mine)
        await eventually(lambda: len(setup.tg.sent) == 1, timeout=5, message="first")
        second = setup.fire(mine)  # its turn comes in 5 s
        await eventually(lambda: setup.delivery(second).status == "sending", message="claimed")
        stopped = time.monotonic()
        await worker.stop()
        await task
        assert time.monotonic() - stopped < 1.0
    finally:
        await telegram.close()
    assert len(setup.tg.sent) == 1
    assert setup.delivery(first).status == "sent"
    row = setup.delivery(second)  # untried, due at once for the next worker
    assert row.status == "pending" and row.attempts == 0 and row.lease_until is None


async def test_a_send_waiting_longer_than_its_lease_keeps_it(setup: Setup) -> None:
    """A chat's turn 1.5 s away, a lease of 0.3 s: the worker renews the lease while it
    waits, so another worker scanning meanwhile takes nothing, and the alert goes out once."""
    mine = setup.add_destination(kind="telegram", chat_id=CHAT)
    async with _running(setup, private_interval=1.5, lease=0.3):
        setup.fire(mine)
        await eventually(lambda: len(setup.tg.sent) == 1, timeout=5, message="first")
        second = setup.fire(mine)
        await eventually(lambda: setup.delivery(second).status == "sending", message="claimed")
        await asyncio.sleep(0.9)  # three leases' worth
        other = claim(setup.db, now=datetime.now(UTC), lease=timedelta(seconds=60), limit=10)
        assert other == []
        await eventually(lambda: len(setup.tg.sent) == 2, timeout=5, message="second")
        await eventually(lambda: setup.delivery(second).status == "sent", message="recorded")
    assert len(setup.tg.sent) == 2
    assert setup.delivery(second).attempts == 1


async def test_a_failed_lease_renewal_is_logged_and_tried_again(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mine = setup.add_destination(kind="telegram", chat_id=CHAT)
    _fail_once(monkeypatch, queue, "renew")
    async with _running(setup, private_interval=1.0, lease=0.3):
        setup.fire(mine)
        await eventually(lambda: len(setup.tg.sent) == 1, timeout=5, message="first")
        second = setup.fire(mine)
        await eventually(lambda: setup.delivery(second).status == "sent", message="second")
    assert "renewing the leases of 1 deliveries failed; trying again in 0.1 s" in caplog.text
    assert len(setup.tg.sent) == 2 and setup.delivery(second).attempts == 1


async def test_a_failed_claim_is_logged_and_the_next_scan_sends(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mine = setup.add_destination(kind="telegram", chat_id=CHAT)
    _fail_once(monkeypatch, queue, "claim")
    delivery = setup.fire(mine)
    async with _running(setup):
        await eventually(lambda: setup.delivery(delivery).status == "sent", message="sent")
    assert "claiming deliveries failed; retrying" in caplog.text
    assert len(setup.tg.sent) == 1


async def test_a_bug_while_sending_leaves_the_alert_to_be_sent_after_its_lease(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    mine = setup.add_destination(kind="telegram", chat_id=CHAT)
    delivery = setup.fire(mine)
    _fail_once(monkeypatch, TelegramNotifier, "send")
    async with _running(setup, lease=0.3):
        await eventually(lambda: setup.delivery(delivery).status == "sent", message="sent")
    assert f"sending to telegram {CHAT} failed; what it held is retried" in caplog.text
    assert len(setup.tg.sent) == 1


async def test_a_failed_record_of_a_send_means_it_is_sent_again_not_lost(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """At least once: a send whose record fails is sent again once its lease ends."""
    mine = setup.add_destination(kind="telegram", chat_id=CHAT)
    delivery = setup.fire(mine)
    _fail_once(monkeypatch, queue, "finish_many")
    async with _running(setup, lease=0.3):
        await eventually(lambda: setup.delivery(delivery).status == "sent", message="sent")
    assert "recording 1 deliveries failed; they are sent again" in caplog.text
    assert [m.text for m in setup.tg.sent] == [setup.tg.sent[0].text] * 2


async def test_apprise_mailto_delivery_to_a_local_smtp_server(setup: Setup) -> None:
    from aiosmtpd.controller import Controller

    received: list[str] = []

    class Handler:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
            received.append(envelope.content.decode())
            return "250 OK"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        url = f"mailto://127.0.0.1:{port}?from=alerts@example.com&to=me@example.com&mode=insecure"
        mail = setup.add_destination(
            kind="apprise", url_sealed=SecretBox(SECRET_KEY).seal(url), url_masked="mailto://..."
        )
        delivery = setup.fire(mail)
        await setup.worker.run_once()
        assert setup.delivery(delivery).status == "sent"
        [message] = received
        assert "Subject: =?utf-8?" in message or "BTC <above> & beyond" in message
        assert "BTC-USDT crossed 70000 up" in message
    finally:
        controller.stop()


# Rate limiting does not depend on the database, and the run takes 40 s: SQLite only.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_burst_to_ten_thousand_chats_never_meets_a_429(setup: Setup) -> None:
    """Telegram's limits scaled 10x on both sides (30/s would take 5.5 minutes). The fake runs
    in its own process, as Telegram would, and answers 429 to anything over the limits; the
    worker's limiter never lets that happen."""
    scale = 10
    port = free_port()
    fake = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.fake_telegram", str(port), str(scale), cwd=REPO
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            await wait_for_fake(client)
            limits = Limits(bot_per_second=30.0 * scale, private_interval=1.0 / scale)
            telegram = TelegramNotifier(TOKEN, api_url=base, limiter=RateLimiter(limits))
            config = WorkerConfig(batch=1000)
            box = SecretBox(SECRET_KEY)
            worker = DeliveryWorker(setup.db, box, telegram=telegram, config=config)
            chats = list(range(50_000, 60_000))
            _burst(setup, chats)
            started = time.monotonic()
            while await worker.run_once():
                pass
            elapsed = time.monotonic() - started
            await telegram.close()
            stats = (await client.get("/stats")).json()
    finally:
        if fake.returncode is None:
            fake.terminate()
        await fake.wait()
    rate = (stats["sent"] - 1) / (stats["last"] - stats["first"])
    print(f"10,000 messages in {elapsed:.1f} s, {rate:.0f}/s received (cap {30 * scale}/s)")
    assert stats["rejected"] == 0
    assert stats["chats"] == chats


def _burst(setup: Setup, chats: list[int]) -> None:
    with setup.db.session() as session:
        rows = [
            Destination(user_id=setup.user_id, kind="telegram", name="c", chat_id=c) for c in chats
        ]
        session.add_all(rows)
        session.flush()
        for row in rows:
            assert row.id is not None
            record_event(
                session,
                user_id=setup.user_id,
                rule_id=setup.rule_id,
                rule_name="burst",
                kind="price_cross",
                symbol="BTC-USDT",
                values={"symbol": "BTC-USDT", "price": "1", "level": "1", "direction": "up"},
                destination_ids=[row.id],
                now=T0,
            )
        session.commit()
