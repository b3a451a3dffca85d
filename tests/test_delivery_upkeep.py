"""What delivery workers do besides sending, on SQLite and PostgreSQL: one worker per bot is
elected to send Telegram's deliveries (the others send the rest, and one takes over when the
sender goes), paid broadcasts reach Telegram as such, and history past its retention is
pruned in small batches with everything that hangs off it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, func, select

from alerts.db import retention
from alerts.db.migrate import upgrade
from alerts.db.models import Delivery, DeliveryAttempt, Destination, Event, User
from alerts.db.outbox import record_event
from alerts.db.queue import Attempt, Outcome, claim, finish_many
from alerts.db.retention import prune
from alerts.db.session import Database
from alerts.delivery.messages import Message
from alerts.delivery.ratelimit import Limits, RateLimiter
from alerts.delivery.telegram import TelegramNotifier
from alerts.delivery.worker import DeliveryWorker, WorkerConfig
from alerts.security import SecretBox
from tests.api_helpers import SECRET_KEY
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import eventually

CHAT = 5151
FAST = Limits(bot_per_second=1000, private_interval=0.0, group_per_minute=1000)


@dataclass
class World:
    db: Database
    user_id: int
    chat: int  # the user's own Telegram chat, a destination
    webhook: int  # an Apprise destination whose URL cannot be opened: dead at once

    def fire(self, destination_id: int, at: datetime | None = None) -> int:
        with self.db.session() as session:
            _, [delivery] = record_event(
                session,
                user_id=self.user_id,
                rule_id=None,
                rule_name="test",
                kind="account",
                symbol=None,
                values={"account": "main", "status": "rejected", "reason": "a test"},
                destination_ids=[destination_id],
                now=at or datetime.now(UTC),
            )
            session.commit()
            assert delivery.id is not None
            return delivery.id

    def status(self, delivery_id: int) -> str:
        with self.db.session() as session:
            row = session.get(Delivery, delivery_id)
            assert row is not None
            return row.status


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    upgrade(database_url)
    db = Database(database_url)
    with db.session() as session:
        user = User(name="alice", telegram_user_id=CHAT)
        session.add(user)
        session.flush()
        assert user.id is not None
        chat = Destination(user_id=user.id, kind="telegram", name="me", chat_id=CHAT)
        hook = Destination(user_id=user.id, kind="apprise", name="h", url_sealed="not sealed")
        session.add_all([chat, hook])
        session.commit()
        ids = (user.id, chat.id or 0, hook.id or 0)
    yield World(db, *ids)
    db.dispose()


@asynccontextmanager
async def running(
    db: Database, tg: FakeTelegram, **config: object
) -> AsyncIterator[DeliveryWorker]:
    """A worker of its own (as in a process of its own: its own `Database`), running."""
    own = Database(db.engine.url.render_as_string(hide_password=False))
    telegram = TelegramNotifier(TOKEN, api_url=tg.url, limiter=RateLimiter(FAST))
    settings = WorkerConfig(poll_interval=0.05, election_interval=0.05)
    for name, value in config.items():
        setattr(settings, name, value)
    worker = DeliveryWorker(own, SecretBox(SECRET_KEY), telegram=telegram, config=settings)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.stop()
        await task
        await telegram.close()
        own.dispose()


async def test_one_worker_sends_for_the_bot_and_another_takes_over_when_it_goes(
    world: World,
) -> None:
    async with FakeTelegram() as tg:
        async with running(world.db, tg) as first:
            await eventually(lambda: first.sends_telegram, timeout=5, message="elected")
            async with running(world.db, tg) as second:
                sent = [world.fire(world.chat) for _ in range(5)]
                dead = [world.fire(world.webhook) for _ in range(10)]
                await eventually(lambda: len(tg.texts(CHAT)) == 5, message="five alerts")
                await eventually(lambda: all(world.status(d) == "dead" for d in dead))
                await eventually(
                    lambda: first.ledger.sent + second.ledger.sent == 5, message="counted"
                )
                # Every Telegram message from the elected worker; the rest from either.
                assert (first.ledger.sent, second.ledger.sent) == (5, 0)
                assert not second.sends_telegram
                assert first.ledger.dead + second.ledger.dead == 10
                await first.stop()  # the sender goes: the other takes over
                await eventually(lambda: second.sends_telegram, timeout=5, message="takeover")
                sent.append(world.fire(world.chat))
                await eventually(lambda: len(tg.texts(CHAT)) == 6, message="the sixth alert")
                # (counted once its answer is back, just after the fake has it)
                await eventually(lambda: second.ledger.sent == 1, message="sent by the other")
        assert {world.status(d) for d in sent} == {"sent"}


async def test_paid_broadcasts_go_as_such_with_the_bot_cap_lifted() -> None:
    async with FakeTelegram() as tg:
        paid = TelegramNotifier(TOKEN, api_url=tg.url, paid_broadcast=True)
        free = TelegramNotifier(TOKEN, api_url=tg.url)
        try:
            assert paid.limiter.limits.bot_per_second == 1000
            assert free.limiter.limits.bot_per_second == 30
            await paid.send(CHAT, Message(title="t", text="paid", html="paid", rule_id=None))
            await free.send(CHAT, Message(title="t", text="free", html="free", rule_id=None))
        finally:
            await paid.close()
            await free.close()
    assert [(s.text, s.paid) for s in tg.sent] == [("paid", True), ("free", False)]


def _counts(db: Database) -> tuple[int, int, int]:
    with db.session() as session:
        return (
            session.exec(select(func.count()).select_from(Event)).one(),
            session.exec(select(func.count()).select_from(Delivery)).one(),
            session.exec(select(func.count()).select_from(DeliveryAttempt)).one(),
        )


def test_pruning_deletes_old_events_with_their_deliveries_a_batch_at_a_time(
    world: World,
) -> None:
    now = datetime.now(UTC)
    old = [world.fire(world.chat, at=now - timedelta(days=100, minutes=i)) for i in range(5)]
    new = world.fire(world.chat, at=now - timedelta(days=1))
    # The old ones were tried once: their attempts go with them.
    jobs = claim(world.db, now=now, lease=timedelta(seconds=60), limit=10)
    assert len(jobs) == 6
    finish_many(world.db, [Attempt(j, Outcome("sent"), now, 5) for j in jobs])
    assert _counts(world.db) == (6, 6, 6)
    before = now - timedelta(days=90)
    assert prune(world.db, before, batch=2) == 2
    assert prune(world.db, before, batch=2) == 2
    assert prune(world.db, before, batch=2) == 1
    assert prune(world.db, before, batch=2) == 0
    assert _counts(world.db) == (1, 1, 1)
    with world.db.session() as session:
        left = session.exec(select(Delivery.id).order_by(col(Delivery.id))).all()
    assert left == [new] and not set(old) & set(left)


async def test_the_worker_prunes_what_is_past_its_retention(world: World) -> None:
    now = datetime.now(UTC)
    for i in range(7):
        world.fire(world.webhook, at=now - timedelta(days=40, minutes=i))
    world.fire(world.webhook, at=now - timedelta(days=10))
    async with FakeTelegram() as tg:
        retention = timedelta(days=30)
        async with running(
            world.db, tg, retention=retention, prune_interval=0.05, prune_batch=3, prune_pause=0
        ):
            await eventually(lambda: _counts(world.db)[0] == 1, timeout=5, message="pruned")


async def test_a_kind_without_a_notifier_is_given_up_with_the_reason(world: World) -> None:
    with world.db.session() as session:
        hook = Destination(user_id=world.user_id, kind="pager", name="w")
        session.add(hook)
        session.commit()
        assert hook.id is not None
        hook_id = hook.id
    delivery = world.fire(hook_id)
    async with FakeTelegram() as tg, running(world.db, tg) as worker:
        await eventually(lambda: world.status(delivery) == "dead", message="given up")
        assert worker.ledger.dead == 1 and worker.ledger.sent == 0
    with world.db.session() as session:
        row = session.get(Delivery, delivery)
        assert row is not None
        assert row.last_error == "no way to send to a 'pager' destination"


async def test_a_failed_pruning_is_logged_and_the_next_round_prunes(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    now = datetime.now(UTC)
    for i in range(3):
        world.fire(world.webhook, at=now - timedelta(days=40, minutes=i))
    real, calls = retention.prune, []

    def fails_once(*args: object) -> int:
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("database gone")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(retention, "prune", fails_once)
    async with FakeTelegram() as tg:
        config = {"retention": timedelta(days=30), "prune_interval": 0.05, "prune_pause": 0}
        async with running(world.db, tg, **config):
            await eventually(lambda: _counts(world.db)[0] == 0, timeout=5, message="pruned")
    [record] = [r for r in caplog.records if "pruning events older than" in r.getMessage()]
    assert record.exc_info is not None and "failed after 0" in record.getMessage()
