"""Quiet hours in the hold stage, with an injected clock, on SQLite and PostgreSQL: alerts are
held through the window (in the user's time zone, across the nights the clocks change), go
out as one digest per destination when it ends, and urgent rules and test messages go
straight through; a mute shares the stage (the later end wins)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from alerts.db.migrate import upgrade
from alerts.db.models import Delivery, Destination, Rule, User
from alerts.db.outbox import record_event
from alerts.db.queue import PENDING, Job, claim
from alerts.db.session import Database
from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.grouping import mute_summary
from alerts.delivery.ratelimit import Limits, RateLimiter
from alerts.delivery.telegram import TelegramNotifier
from alerts.delivery.worker import DeliveryWorker, WorkerConfig
from alerts.security import SecretBox
from alerts.services.schemas import QuietHoursWindow, UserSettingsUpdate
from alerts.services.users import mute_user, unmute_user, update_settings
from tests.api_helpers import SECRET_KEY
from tests.clocks import Clock
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.webhook import Receiver, serving

CHAT, GROUP = 4242, -100999
LEASE = timedelta(seconds=60)
# Europe/Berlin, 23:00-07:30: the nights of the last Sundays of March (CET in, CEST out: 7.5
# hours) and October (CEST in, CET out: 9.5 hours), as (the window's start, its end) in UTC.
MARCH = (datetime(2026, 3, 28, 22, 0, tzinfo=UTC), datetime(2026, 3, 29, 5, 30, tzinfo=UTC))
OCTOBER = (datetime(2026, 10, 24, 21, 0, tzinfo=UTC), datetime(2026, 10, 25, 6, 30, tzinfo=UTC))
T0 = MARCH[0]


@dataclass
class Night:
    db: Database
    tg: FakeTelegram
    hook: Receiver
    worker: DeliveryWorker
    clock: Clock
    user_id: int
    rules: dict[str, int]
    to: dict[str, int]  # destination ids: "chat", "group", "hook"

    def fire(self, rule: str, *where: str, level: int = 70000, test: bool = False) -> list[int]:
        """An alert of `rule` at the clock's time, to the destinations named."""
        with self.db.session() as session:
            _, deliveries = record_event(
                session,
                user_id=self.user_id,
                rule_id=self.rules[rule],
                rule_name=rule,
                kind="price_cross",
                symbol="BTC-USDT",
                values={"symbol": "BTC-USDT", "price": "1", "level": str(level), "direction": "up"},
                destination_ids=[self.to[w] for w in where],
                now=self.clock(),
                test=test,
            )
            session.commit()
            return [d.id or 0 for d in deliveries]

    def deliveries(self) -> list[Delivery]:
        with self.db.session() as session:
            return list(session.exec(select(Delivery).order_by(col(Delivery.id))))

    def set_user(self, **fields: Any) -> None:
        with self.db.session() as session:
            user = session.get(User, self.user_id)
            assert user is not None
            for name, value in fields.items():
                setattr(user, name, value)
            session.add(user)
            session.commit()


@pytest.fixture
async def night(database_url: str) -> AsyncIterator[Night]:
    upgrade(database_url)
    db = Database(database_url)
    box = SecretBox(SECRET_KEY)
    async with FakeTelegram() as tg, serving(Receiver()) as hook:
        with db.session() as session:
            user = User(name="alice", telegram_user_id=CHAT, timezone="Europe/Berlin")
            user.quiet_start, user.quiet_end = "23:00", "07:30"
            session.add(user)
            session.flush()
            assert user.id is not None
            params = {"symbol": "BTC-USDT", "level": "70000"}
            rules = {
                name: Rule(user_id=user.id, kind="price_cross", name=name, params=params)
                for name in ("calm", "urgent")
            }
            rules["urgent"].urgent = True
            destinations = {
                "chat": Destination(user_id=user.id, kind="telegram", name="me", chat_id=CHAT),
                "group": Destination(user_id=user.id, kind="telegram", name="g", chat_id=GROUP),
                "hook": Destination(
                    user_id=user.id, kind="apprise", name="h", url_sealed=box.seal(hook.url())
                ),
            }
            session.add_all([*rules.values(), *destinations.values()])
            session.commit()
            user_id = user.id
            rule_ids = {k: v.id or 0 for k, v in rules.items()}
            to = {k: v.id or 0 for k, v in destinations.items()}
        clock = Clock(T0)
        fast = Limits(bot_per_second=1000, private_interval=0.0, group_per_minute=1000)
        limiter = RateLimiter(
            fast, clock=lambda: time.monotonic() + (clock.now - T0).total_seconds()
        )
        telegram = TelegramNotifier(TOKEN, api_url=tg.url, limiter=limiter, timeout=2)
        worker = DeliveryWorker(
            db,
            box,
            telegram=telegram,
            apprise=AppriseNotifier(allow_private=True),  # the receiver is local
            config=WorkerConfig(elect_telegram_sender=False),
            clock=clock,
        )
        yield Night(db, tg, hook, worker, clock, user_id, rule_ids, to)
        await telegram.close()
    db.dispose()


@pytest.mark.parametrize("window", [MARCH, OCTOBER], ids=["march", "october"])
async def test_held_through_the_night_one_digest_each_at_its_end_urgent_straight_through(
    night: Night, window: tuple[datetime, datetime]
) -> None:
    start, end = window
    night.clock.now = start - timedelta(minutes=30)  # 22:30 in Berlin: not yet
    night.fire("calm", "chat")
    assert await night.worker.run_once()
    assert len(night.tg.texts(CHAT)) == 1

    held: list[int] = []
    # 23:00 (the window's first minute), past midnight, on both sides of the change at
    # 01:00 UTC, and a minute before the end.
    for at in (start, start + timedelta(hours=2, minutes=30), end - timedelta(hours=2), end):
        night.clock.now = at - timedelta(minutes=1) if at == end else at
        held += night.fire("calm", "chat", "group", "hook", level=70000 + len(held))
        assert not await night.worker.run_once()
    night.fire("urgent", "chat")  # at 07:29, an urgent rule, and a test message: at once
    night.fire("calm", "chat", test=True)
    assert await night.worker.run_once()
    assert len(night.tg.texts(CHAT)) == 3 and night.tg.texts(GROUP) == []
    assert night.hook.bodies == []
    rows = {d.id: d for d in night.deliveries()}
    for i in held:
        row = rows[i]
        assert (row.status, row.held, row.hold_reason) == (PENDING, True, "quiet")
        assert row.next_attempt_at == end and row.attempts == 0

    night.clock.now = end - timedelta(seconds=1)
    assert not await night.worker.run_once()
    night.clock.now = end  # 07:30 in Berlin, in CEST in March and CET in October
    assert await night.worker.run_once()
    for chat in (CHAT, GROUP):
        digest = night.tg.texts(chat)[-1]
        assert digest.startswith("<b>🌙 While quiet: 4 alerts</b>"), digest
        assert digest.count("crossed") == 4
    assert len(night.tg.texts(CHAT)) == 4 and len(night.tg.texts(GROUP)) == 1
    [body] = night.hook.bodies
    assert body["title"] == "🌙 While quiet: 4 alerts"
    assert {d.status for d in night.deliveries()} == {"sent"}
    assert not await night.worker.run_once()


async def test_a_digest_lists_the_newest_few_and_counts_the_rest(night: Night) -> None:
    for minute in range(7):
        night.clock.now = T0 + timedelta(minutes=minute)
        night.fire("calm", "chat", level=70000 + minute)
    assert not await night.worker.run_once()
    night.clock.now = MARCH[1]
    assert await night.worker.run_once()
    [digest] = night.tg.texts(CHAT)
    assert digest.startswith("<b>🌙 While quiet: 7 alerts</b>")
    listed = [line for line in digest.splitlines() if line.startswith("•")]
    assert [f"crossed {70006 - i}" in line for i, line in enumerate(listed)] == [True] * 5
    assert digest.splitlines()[-1] == "<i>…and 2 earlier alerts</i>"


@pytest.mark.parametrize(
    ("muted_until", "until", "reason"),
    [
        (MARCH[1] + timedelta(hours=1), MARCH[1] + timedelta(hours=1), "mute"),
        (T0 + timedelta(hours=1), MARCH[1], "quiet"),
    ],
)
def test_mute_and_quiet_hours_hold_until_the_later_end(
    night: Night, muted_until: datetime, until: datetime, reason: str
) -> None:
    night.set_user(muted_until=muted_until)
    [calm] = night.fire("calm", "chat")
    [urgent] = night.fire("urgent", "chat")
    assert claim(night.db, now=T0, lease=LEASE, limit=10) == []
    rows = {d.id: d for d in night.deliveries()}
    assert (rows[calm].next_attempt_at, rows[calm].hold_reason) == (until, reason)
    # A mute holds even an urgent rule's alerts: it is the user's own "not now".
    assert (rows[urgent].next_attempt_at, rows[urgent].hold_reason) == (muted_until, "mute")


def test_outside_the_window_or_without_quiet_hours_nothing_is_held(night: Night) -> None:
    first = night.fire("calm", "chat")
    night.clock.now = T0 - timedelta(minutes=1)
    second = night.fire("calm", "chat")
    assert [j.delivery_id for j in claim(night.db, now=night.clock.now, lease=LEASE, limit=10)] == (
        second
    )
    night.set_user(quiet_start=None, quiet_end=None)
    assert [j.delivery_id for j in claim(night.db, now=T0, lease=LEASE, limit=10)] == first


def test_changing_quiet_hours_lets_out_what_they_held_and_unmute_does_not(night: Night) -> None:
    [delivery] = night.fire("calm", "chat")
    assert claim(night.db, now=T0, lease=LEASE, limit=10) == []
    with night.db.writing() as session:
        assert unmute_user(session, night.user_id, now=T0) == 0  # not the mute's to let out
    later = T0 + timedelta(minutes=5)
    assert claim(night.db, now=later, lease=LEASE, limit=10) == []

    # Shorter hours (ending at 00:00 Berlin, 23:00 UTC): held again until the new end...
    shorter = UserSettingsUpdate(quiet_hours=QuietHoursWindow(start="23:00", end="00:00"))
    with night.db.writing() as session:
        update_settings(session, night.user_id, shorter, now=later)
    assert claim(night.db, now=later, lease=LEASE, limit=10) == []
    [row] = night.deliveries()
    assert row.next_attempt_at == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    # ...and none at all: due at once, as the quiet hours' summary.
    with night.db.writing() as session:
        update_settings(session, night.user_id, UserSettingsUpdate(quiet_hours=None), now=later)
    [job] = claim(night.db, now=later, lease=LEASE, limit=10)
    assert (job.delivery_id, job.held, job.hold_reason) == (delivery, True, "quiet")


def test_unmute_lets_out_only_what_the_mute_held(night: Night) -> None:
    with night.db.writing() as session:
        mute_user(session, night.user_id, MARCH[1] + timedelta(hours=1))
    night.fire("calm", "chat")
    assert claim(night.db, now=T0, lease=LEASE, limit=10) == []
    with night.db.writing() as session:
        assert unmute_user(session, night.user_id, now=T0) == 1
    # Let out, it meets the quiet hours, which hold it until they end.
    assert claim(night.db, now=T0, lease=LEASE, limit=10) == []
    [row] = night.deliveries()
    assert (row.next_attempt_at, row.hold_reason) == (MARCH[1], "quiet")


def _job(delivery_id: int, reason: str | None) -> Job:
    return Job(
        delivery_id=delivery_id,
        attempts=1,
        created_at=T0,
        destination_id=1,
        destination_kind="telegram",
        destination_enabled=True,
        disabled_reason=None,
        chat_id=CHAT,
        url_sealed=None,
        event_id=delivery_id,
        event_kind="price_cross",
        rule_id=1,
        rule_name="calm",
        template=None,
        values={"symbol": "BTC-USDT", "price": "1", "level": "2", "direction": "up"},
        test=False,
        after_gap=False,
        fired_at=T0 + timedelta(seconds=delivery_id),
        held=True,
        hold_reason=reason,
    )


@pytest.mark.parametrize(
    ("reasons", "title"),
    [
        (["quiet"], "🌙 While quiet: 1 alert"),
        (["mute", "mute"], "🔕 While muted: 2 alerts"),
        ([None], "🔕 While muted: 1 alert"),  # held before reasons were recorded: a mute
        (["mute", "quiet", "quiet"], "🔕 While muted and quiet: 3 alerts"),
    ],
)
def test_a_summary_says_what_held_it(reasons: list[str | None], title: str) -> None:
    summary = mute_summary([_job(i, r) for i, r in enumerate(reasons, 1)])
    assert summary.title == title and summary.text.startswith(title)
    assert "…and" not in summary.text
