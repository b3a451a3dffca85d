"""Recording hits in batches through the outbox's one `enqueue`: routing agrees with the
one-firing path, duplicates and late hits are dropped, prices never run ahead of a hit, and
the deliveries go in pending, waking the workers of this process (the doorbell) and, on
PostgreSQL, of the others (NOTIFY), who claim them under a lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import col, select

from alerts.db.migrate import upgrade
from alerts.db.models import (
    DeadLetter,
    Delivery,
    Destination,
    EngineState,
    Event,
    Rule,
    RuleDestination,
    User,
)
from alerts.db.models import Ticker as TickerRow
from alerts.db.outbox import delivery_targets, record_event, rule_destination_ids
from alerts.db.queue import PENDING, claim
from alerts.db.recording import record
from alerts.db.session import Database
from alerts.delivery.ratelimit import Limits, RateLimiter
from alerts.delivery.telegram import TelegramNotifier
from alerts.delivery.worker import DeliveryWorker, WorkerConfig
from alerts.domain.events import Ticker
from alerts.domain.hits import Hit
from alerts.engine.recorder import Recorder
from alerts.security import SecretBox
from tests.api_helpers import SECRET_KEY
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.feed_helpers import eventually

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # in the past: due for a worker on real time
LEASE = timedelta(seconds=60)


@dataclass
class World:
    db: Database
    alice: int  # has a private chat (telegram_user_id 700)
    bob: int  # has none
    rules: dict[str, int]
    chats: dict[str, int]  # destination ids

    def hit(self, rule: str, *, at: datetime = T0, **fields: Any) -> Hit:
        values = {"symbol": "BTC-USDT", "price": "70100", "time": at.isoformat()}
        with self.db.session() as session:
            row = session.get(Rule, self.rules[rule])
            assert row is not None
            once = row.trigger == "once"
        return Hit(
            rule_id=self.rules[rule],
            user_id=0,
            kind="price_cross",
            symbol="BTC-USDT",
            values=values,
            fired_at=at,
            once=fields.pop("once", once),
            **fields,
        )

    def events(self, rule: str) -> list[Event]:
        with self.db.session() as session:
            query = select(Event).where(Event.rule_id == self.rules[rule])
            return list(session.exec(query.order_by(col(Event.id))))

    def deliveries(self, rule: str) -> list[Delivery]:
        with self.db.session() as session:
            query = (
                select(Delivery)
                .join(Event, col(Event.id) == col(Delivery.event_id))
                .where(Event.rule_id == self.rules[rule])
            )
            return list(session.exec(query.order_by(col(Delivery.id))))

    def rule(self, name: str) -> Rule:
        with self.db.session() as session:
            row = session.get(Rule, self.rules[name])
            assert row is not None
            return row


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    upgrade(database_url)
    db = Database(database_url)
    with db.session() as session:
        alice = User(name="alice", telegram_user_id=700)
        bob = User(name="bob")
        session.add_all([alice, bob])
        session.flush()
        assert alice.id is not None and bob.id is not None
        chats = {
            "private": Destination(user_id=alice.id, kind="telegram", name="me", chat_id=700),
            "group": Destination(user_id=alice.id, kind="telegram", name="g", chat_id=-5),
            "off": Destination(
                user_id=alice.id, kind="telegram", name="o", chat_id=6, enabled=False
            ),
            "bobs": Destination(user_id=bob.id, kind="telegram", name="b", chat_id=800),
        }
        session.add_all(chats.values())
        session.flush()

        def rule(user: int, name: str, **fields: Any) -> Rule:
            params = {"symbol": "BTC-USDT", "level": "70000"}
            return Rule(user_id=user, kind="price_cross", name=name, params=params, **fields)

        rules = {
            "named": rule(alice.id, "named", trigger="every"),  # group, off and bob's chat
            "default": rule(alice.id, "default", trigger="every"),  # alice's private chat
            "nowhere": rule(bob.id, "nowhere", trigger="every"),  # bob has no private chat
            "once": rule(alice.id, "once"),
            "paused": rule(alice.id, "paused", enabled=False),
            "keyed": rule(alice.id, "keyed", trigger="every"),
        }
        session.add_all(rules.values())
        session.flush()
        for name in ("group", "off", "bobs"):
            session.add(
                RuleDestination(rule_id=rules["named"].id or 0, destination_id=chats[name].id or 0)
            )
        session.commit()
        ids = {k: v.id or 0 for k, v in rules.items()}
        chat_ids = {k: v.id or 0 for k, v in chats.items()}
    w = World(db, alice.id, bob.id, ids, chat_ids)
    yield w
    db.dispose()


def test_a_batch_routes_as_single_firings_do(world: World) -> None:
    hits = [world.hit(name) for name in ("named", "default", "nowhere", "paused")]
    created = record(world.db, hits, {}, {}, T0)
    with world.db.session() as session:
        for name in ("named", "default", "nowhere"):
            rule = session.get(Rule, world.rules[name])
            assert rule is not None
            expected = delivery_targets(
                session, rule.user_id, rule_destination_ids(session, rule.id or 0)
            )
            assert [d.destination_id for d in world.deliveries(name)] == expected
    assert [d.destination_id for d in world.deliveries("named")] == [world.chats["group"]]
    assert [d.destination_id for d in world.deliveries("default")] == [world.chats["private"]]
    assert world.deliveries("nowhere") == [] and len(world.events("nowhere")) == 1
    assert world.events("paused") == []  # paused between evaluation and recording
    all_ids = [d.id or 0 for name in ("named", "default") for d in world.deliveries(name)]
    assert sorted(created) == sorted(all_ids)
    event = world.events("default")[0]
    assert event.values["rule"] == "default" and event.values["kind"] == "price_cross"
    assert event.fired_at == T0 and event.rule_name == "default"


def test_rule_state_duplicates_and_once(world: World) -> None:
    later = T0 + timedelta(seconds=1)
    hits = [
        world.hit("default"),
        world.hit("default", at=later),  # an `every` rule firing twice in one batch
        world.hit("once"),
        world.hit("once", at=later),  # too late: the first disabled it
        world.hit("keyed", dedup_key="o1:FILLED"),
        world.hit("keyed", dedup_key="o1:FILLED"),  # the same occurrence twice
    ]
    record(world.db, hits, {}, {}, later)
    assert world.rule("default").fire_count == 2 and world.rule("default").last_fired_at == later
    assert [e.fired_at for e in world.events("default")] == [T0, later]
    once = world.rule("once")
    assert (once.enabled, once.fire_count, len(world.events("once"))) == (False, 1, 1)
    assert len(world.events("keyed")) == 1
    # Seen before (e.g. before a restart): not recorded again; a new occurrence is.
    record(world.db, [world.hit("keyed", dedup_key="o1:FILLED")], {}, {}, later)
    record(world.db, [world.hit("keyed", dedup_key="o1:CANCELED")], {}, {}, later)
    assert [e.dedup_key for e in world.events("keyed")] == ["o1:FILLED", "o1:CANCELED"]
    assert world.rule("keyed").fire_count == 2


def _ticker(symbol: str, last: str) -> Ticker:
    return Ticker(symbol=symbol, last=Decimal(last), bid=None, ask=None, timestamp=0)


def _prices(db: Database) -> dict[str, Decimal | None]:
    with db.session() as session:
        return {t.symbol: t.last for t in session.exec(select(TickerRow))}


def _no_accounts(account: int) -> dict[str, Any]:
    raise AssertionError(f"no account state expected, asked for {account}")


async def test_hits_are_written_at_once_with_their_own_prices_only(world: World) -> None:
    states = {7: {"balances": {"USDT": "5"}, "orders": {}, "since": None}}
    recorder = Recorder(world.db, states.__getitem__, lambda: T0, interval=3600, retry_delay=0.01)
    rung = asyncio.Event()
    world.db.doorbell.add(rung)
    stopping = asyncio.Event()
    task = asyncio.create_task(recorder.run(stopping))
    try:
        recorder.ticker(_ticker("ETH-USDT", "3500"))
        recorder.ticker(_ticker("BTC-USDT", "70100"))
        recorder.account(7)
        recorder.add([world.hit("default")])
        async with asyncio.timeout(1):
            await rung.wait()  # the workers of this process are woken by the commit
        # Pending, due at once, for whichever worker claims it first.
        [row] = world.deliveries("default")
        assert row.status == PENDING and row.attempts == 0 and row.lease_until is None
        assert row.next_attempt_at == T0
        # The hit's symbol's price went with it; the rest waits for the periodic write.
        assert _prices(world.db) == {"BTC-USDT": Decimal("70100")}
        await recorder.flush()
        assert _prices(world.db) == {"BTC-USDT": Decimal("70100"), "ETH-USDT": Decimal("3500")}
        with world.db.session() as session:
            state = session.get(EngineState, "account:7")
            assert state is not None and state.value == states[7]
    finally:
        stopping.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_failed_write_keeps_everything_and_newer_prices_win(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(world.db, _no_accounts, lambda: T0, interval=3600, retry_delay=0.01)
    recorder.ticker(_ticker("BTC-USDT", "70100"))
    recorder.add([world.hit("default")])

    def broken(*_args: Any) -> list[int]:
        raise RuntimeError("database gone")

    # The database down: writes fail, and so does the probe that tells a bad row from that.
    monkeypatch.setattr("alerts.engine.recorder.record", broken)
    monkeypatch.setattr("alerts.engine.deadletters.database_answers", lambda _db: False)
    with pytest.raises(RuntimeError):
        await recorder.flush()
    recorder.ticker(_ticker("BTC-USDT", "70200"))  # arrived meanwhile
    monkeypatch.setattr("alerts.engine.recorder.record", record)
    monkeypatch.undo()
    await recorder.flush()
    assert len(world.events("default")) == 1 and recorder.recorded == 1
    assert _prices(world.db) == {"BTC-USDT": Decimal("70200")}


def test_a_claim_takes_what_is_due_and_what_a_dead_worker_held(world: World) -> None:
    first, second = sorted(record(world.db, [world.hit("default"), world.hit("named")], {}, {}, T0))
    [job] = claim(world.db, now=T0, lease=LEASE, limit=1)
    assert job.delivery_id == first and job.attempts == 1 and job.chat_id == 700
    # Leased: a scan does not take it again before the lease ends.
    assert [j.delivery_id for j in claim(world.db, now=T0, lease=LEASE, limit=10)] == [second]
    # A worker that died: its lease runs out and the delivery is claimed again...
    later = T0 + LEASE + timedelta(seconds=1)
    again = claim(world.db, now=later, lease=LEASE, limit=10)
    assert [(j.delivery_id, j.attempts) for j in again] == [(first, 2), (second, 2)]
    assert claim(world.db, now=later, lease=LEASE, limit=10) == []


def test_two_processes_claiming_at_once_never_take_the_same_delivery(world: World) -> None:
    for _ in range(10):
        record(world.db, [world.hit("default") for _ in range(10)], {}, {}, T0)
    url = world.db.engine.url.render_as_string(hide_password=False)
    others = [Database(url) for _ in range(4)]  # a `Database` each, as processes have
    try:

        def drain(db: Database) -> list[int]:
            taken: list[int] = []
            while jobs := claim(db, now=T0, lease=LEASE, limit=3):
                taken += [j.delivery_id for j in jobs]
            return taken

        with ThreadPoolExecutor(len(others)) as pool:
            taken = [d for got in pool.map(drain, others) for d in got]
    finally:
        for db in others:
            db.dispose()
    assert len(taken) == 100 and len(set(taken)) == 100


@pytest.fixture
async def sender(world: World) -> AsyncIterator[tuple[World, FakeTelegram, DeliveryWorker]]:
    async with FakeTelegram() as tg:
        limiter = RateLimiter(Limits(bot_per_second=1000, private_interval=0.0))
        telegram = TelegramNotifier(TOKEN, api_url=tg.url, limiter=limiter)
        # No scans during the test: whatever is sent, the worker was woken for.
        config = WorkerConfig(poll_interval=3600)
        worker = DeliveryWorker(world.db, SecretBox(SECRET_KEY), telegram=telegram, config=config)
        yield world, tg, worker
        await telegram.close()


async def _sent_once(tg: FakeTelegram, chats: list[int]) -> None:
    await eventually(lambda: len(tg.sent) >= len(chats), timeout=2, message="sent")
    assert sorted(s.chat_id for s in tg.sent) == chats
    await asyncio.sleep(0.2)
    assert len(tg.sent) == len(chats)  # nothing twice


async def test_a_commit_that_enqueues_wakes_the_worker_without_a_scan(
    sender: tuple[World, FakeTelegram, DeliveryWorker],
) -> None:
    world, tg, worker = sender
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.05)  # its first scan, at start, found nothing
        await world.db.call(
            record, world.db, [world.hit("default"), world.hit("named")], {}, {}, T0
        )
        await _sent_once(tg, [-5, 700])
    finally:
        await worker.stop()
        await task
    with world.db.session() as session:
        statuses = {d.status for d in session.exec(select(Delivery))}
    assert statuses == {"sent"}


async def test_another_process_enqueuing_wakes_the_worker_through_notify(
    sender: tuple[World, FakeTelegram, DeliveryWorker],
) -> None:
    world, tg, worker = sender
    if world.db.dialect != "postgresql":
        pytest.skip("LISTEN/NOTIFY is PostgreSQL's; on SQLite one process runs everything")
    other = Database(str(world.db.engine.url.render_as_string(hide_password=False)))
    task = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.3)  # listening (a scan at start found nothing)
        # Another `Database`, as another process has: this process's doorbell does not ring.
        await asyncio.to_thread(record, other, [world.hit("default")], {}, {}, T0)
        await _sent_once(tg, [700])
    finally:
        await worker.stop()
        await task
        other.dispose()


async def test_a_rolled_back_enqueue_wakes_no_one(world: World) -> None:
    rung = asyncio.Event()
    world.db.doorbell.add(rung)
    with world.db.writing() as session:
        record_event(
            session,
            user_id=world.alice,
            rule_id=None,
            rule_name="never",
            kind="account",
            symbol=None,
            values={},
            destination_ids=[world.chats["private"]],
            now=T0,
        )
        session.rollback()
    with world.db.writing() as session:
        session.commit()  # a later commit that enqueued nothing rings nothing either
    await asyncio.sleep(0.05)
    assert not rung.is_set()


def test_a_muted_owners_deliveries_are_held_when_claimed(world: World) -> None:
    with world.db.session() as session:
        alice = session.get(User, world.alice)
        assert alice is not None
        alice.muted_until = T0 + timedelta(hours=1)
        session.add(alice)
        session.commit()
    record(world.db, [world.hit("default")], {}, {}, T0)
    assert claim(world.db, now=T0, lease=LEASE, limit=10) == []
    [row] = world.deliveries("default")
    assert row.status == PENDING and row.held and row.next_attempt_at == T0 + timedelta(hours=1)
    assert row.attempts == 0


def test_each_event_in_a_batch_keeps_its_own_deliveries(world: World) -> None:
    later = T0 + timedelta(seconds=1)
    hits = [world.hit("named"), world.hit("default"), world.hit("named", at=later)]
    hits.append(world.hit("default"))  # the same rule twice at the same time
    record(world.db, hits, {}, {}, T0)
    with world.db.session() as session:
        pairs = [
            (session.get(Event, d.event_id), d)
            for d in session.exec(select(Delivery).order_by(col(Delivery.id)))
        ]
    seen = []
    for event, delivery in pairs:
        assert event is not None
        assert delivery.created_at == event.fired_at
        expected = world.chats["group"] if event.rule_name == "named" else world.chats["private"]
        assert delivery.destination_id == expected
        seen.append((event.rule_name, event.fired_at))
    assert sorted(seen) == sorted(
        [("named", T0), ("default", T0), ("named", later), ("default", T0)]
    )


# --- one bad row never blocks the others ---------------------------------------------


def _dead_letters(db: Database) -> list[DeadLetter]:
    with db.session() as session:
        return list(session.exec(select(DeadLetter).order_by(col(DeadLetter.id))))


async def test_a_hit_that_fails_alone_is_dead_lettered_and_the_rest_recorded(
    world: World, database_url: str
) -> None:
    """A poisoned hit among good ones: the batch fails, the hits are written one by one, the
    bad one goes to dead_letters with its error, and nothing is retried forever."""
    recorder = Recorder(world.db, _no_accounts, lambda: T0, interval=3600, retry_delay=0.01)
    # A value no JSON column takes (values are text; a bug could let a Decimal through).
    poisoned = world.hit("named")
    poisoned.values.update(note="x\x00y" * 100)
    poisoned.values["price"] = Decimal("70100")  # type: ignore[assignment]
    recorder.ticker(_ticker("BTC-USDT", "70100"))
    recorder.ticker(_ticker("ETH-USDT", "3000"))
    recorder.add([world.hit("default"), poisoned, world.hit("keyed", dedup_key="k1")])
    await recorder.flush()
    assert len(world.events("default")) == 1 and len(world.events("keyed")) == 1
    assert recorder.recorded == 2 and recorder.dead_lettered == 1
    assert recorder.failing_for == 0 and recorder.dead_letters_since(60) == 1
    [dead] = _dead_letters(world.db)
    assert dead.kind == "hit" and dead.symbol == "BTC-USDT" and dead.error
    assert "\x00" not in dead.payload["note"] and len(dead.payload["note"]) <= 200
    assert _prices(world.db) == {"BTC-USDT": Decimal("70100"), "ETH-USDT": Decimal("3000")}
    # Nothing is left to retry: the next write records only what is new.
    recorder.add([world.hit("default", at=T0 + timedelta(seconds=1))])
    await recorder.flush()
    assert len(world.events("default")) == 2 and len(_dead_letters(world.db)) == 1


async def test_a_hit_that_cannot_even_be_dead_lettered_is_logged_and_the_rest_recorded(
    world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(world.db, _no_accounts, lambda: T0, interval=3600, retry_delay=0.01)
    poisoned = world.hit("named")
    poisoned.values["price"] = Decimal("70100")  # type: ignore[assignment]

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("dead_letters is broken too")

    monkeypatch.setattr("alerts.engine.deadletters.write", broken)
    recorder.add([world.hit("default"), poisoned])
    await recorder.flush()
    assert len(world.events("default")) == 1 and world.events("named") == []
    assert recorder.recorded == 1 and recorder.failing_for == 0
    assert _dead_letters(world.db) == []
    assert "could not even dead-letter a hit (rule " in caplog.text
    assert "it is dropped" in caplog.text
    # Recording goes on.
    recorder.add([world.hit("default", at=T0 + timedelta(seconds=1))])
    await recorder.flush()
    assert len(world.events("default")) == 2


@pytest.mark.postgres
async def test_postgres_rejects_what_sqlite_would_store_and_only_that_is_lost(
    world: World, database_url: str
) -> None:
    """The shapes that stopped recording on PostgreSQL: a 500-character dedup key (a trade
    id) and a 305-character symbol's price. Each is dead-lettered; the rest is recorded."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite does not enforce column lengths")
    recorder = Recorder(world.db, _no_accounts, lambda: T0, interval=3600, retry_delay=0.01)
    recorder.ticker(_ticker("X" * 305, "1"))
    recorder.ticker(_ticker("BTC-USDT", "70100"))
    recorder.add([world.hit("keyed", dedup_key="t" * 500), world.hit("default")])
    await recorder.flush()
    assert world.events("keyed") == [] and len(world.events("default")) == 1
    assert sorted(d.kind for d in _dead_letters(world.db)) == ["hit", "price"]
    assert _prices(world.db) == {"BTC-USDT": Decimal("70100")}


async def test_when_the_database_is_down_nothing_is_dead_lettered(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failing write while the database does not answer is an outage, not a bad row:
    everything waits, `failing_for` grows (for /readyz), and it is all written later."""
    recorder = Recorder(world.db, _no_accounts, lambda: T0, interval=3600, retry_delay=0.01)
    stopping = asyncio.Event()

    def down(*_args: Any) -> list[int]:
        raise OSError("connection refused")

    monkeypatch.setattr("alerts.engine.recorder.record", down)
    monkeypatch.setattr("alerts.engine.deadletters.database_answers", lambda _db: False)
    task = asyncio.create_task(recorder.run(stopping))
    recorder.add([world.hit("default")])
    for _ in range(100):
        await asyncio.sleep(0.01)
        if recorder.failing_for > 0.1:
            break
    assert recorder.failing_for > 0.1 and recorder.dead_lettered == 0
    monkeypatch.undo()
    for _ in range(200):
        await asyncio.sleep(0.01)
        if world.events("default") and recorder.failing_for == 0:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(world.events("default")) == 1 and recorder.failing_for == 0
    assert _dead_letters(world.db) == []
