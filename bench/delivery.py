"""Delivery benchmark: alert latency under load, a burst recorded, Apprise throughput, and the
Telegram send rate.

(a) Latency, with 1,000 background ticker pushes/s and about 100 firings/s, in two shapes:
    - one alert per push: the simulator (its own process) ticks 10 symbols 100 times a
      second; one more, HOT-USDT, walks a staircase up and down between 100.5 and 1099.5,
      one step per tick, and one `every` rule on each level 101..1100 alerts its own
      Telegram chat;
    - ten alerts per push: 100 symbols ticked 10 times a second, HOT-USDT's staircase between
      100.5 and 199.5, and ten rules on each level 101..200 (ten chats), so every crossing
      sends ten messages at once (a popular level, like a round number).
    The engine and a delivery worker run here on SQLite, wired as in `alerts run`: the
    engine enqueues each firing's deliveries through the outbox and its commit wakes the
    worker, which claims and sends them. They go to a local Bot API receiver in its own
    process (as Telegram's servers are not in ours; --fake-in-process puts the tests'
    FakeTelegram here instead) that answers each request 40 ms after it arrives
    (--answer-delay), a real round trip to Telegram, with no limits (100/s is above
    Telegram's 30/s per bot). Measured from the engine's evaluation of the push (the
    event's `time`, taken as the push arrives): the service's own time, to the sendMessage
    request's last byte reaching the receiver's socket; and end to end, to the answer.
(b) A burst: 10,000 rules on one level, one push crossing it; seconds from the push's
    evaluation until every event and delivery is committed (the engine's recorder), on
    SQLite and, when TEST_DATABASE_URL is set, PostgreSQL.
(c) Apprise. 3,000 alerts to a json:// destination served by a local HTTP receiver (its own
    process, as a webhook's server is not in ours; --receiver-in-process puts it here), sent
    by a delivery worker with the notifier's default concurrency and the service's default
    helper processes (--apprise-processes N; 0: threads of this process): deliveries/s from
    the first claim to the last attempt recorded, after 300 sends (a running service, its
    helpers started), and once more from cold, the helpers' start (loading Python and
    Apprise, ~0.5 s) inside the measured time.
(d) Telegram send rate. 300 alerts to 300 distinct chats with Telegram's real limits, the
    fake enforcing them (429 above 30 messages in any second): messages/s over the 30/s cap.
    (bench/telegram_workers.py does the same with three worker processes and 3,000 chats.)

Goals (issue 17): (a) service's own time p50 <= 3 ms and p99 <= 10 ms, end to end p99 <=
40 + 15 ms; (b) <= 1 s; (c) >= 1,000 deliveries/s; (d) >= 0.93 of the cap, zero 429.

    .venv/bin/python bench/delivery.py [--seconds 15]
    .venv/bin/python bench/delivery.py --only a [--seconds 15] [--fake-in-process]  # (a) alone
    .venv/bin/python bench/delivery.py --only a --together 10   # (a), ten alerts per push only
    .venv/bin/python bench/delivery.py --only b [--burst 10000]
    .venv/bin/python bench/delivery.py --only c [--receiver-in-process] [--apprise-processes N]

With BENCH_DEBUG=1, (a) also splits the latency into the wait before the send starts and the
send itself (from the delivery attempts recorded in the database).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from aiohttp import ClientError, ClientSession
from feed_throughput import free_port, wait_for_server

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.db.migrate import upgrade
from alerts.db.models import Destination, Rule, RuleDestination, User, utcnow
from alerts.db.outbox import record_event
from alerts.db.session import Database
from alerts.delivery.apprise_notifier import AppriseNotifier
from alerts.delivery.ratelimit import Limits, RateLimiter
from alerts.delivery.telegram import TelegramNotifier
from alerts.delivery.worker import DeliveryWorker, WorkerConfig
from alerts.engine.runner import Engine, EngineConfig
from alerts.feed import Backoff, FeedConfig
from alerts.security import SecretBox
from alerts.settings import Settings
from alerts.simulator import Simulator, SimulatorConfig
from tests.fake_telegram import TOKEN, FakeTelegram
from tests.pg import temporary_database

# What the service runs with (ALERTS_APPRISE_PROCESSES's default).
APPRISE_PROCESSES: int = Settings.model_fields["apprise_processes"].default
KEY = "kPDM3VNvUEl4Fq8D9hLO8wN3Jd6wHvNZXJ9UQQ2-2sU="


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _user(db: Database) -> int:
    with db.session() as session:
        user = User(name="bench")
        session.add(user)
        session.commit()
        assert user.id is not None
        return user.id


def _chats(db: Database, user_id: int, first: int, count: int) -> list[int]:
    with db.session() as session:
        rows = [
            Destination(user_id=user_id, kind="telegram", name="c", chat_id=first + i)
            for i in range(count)
        ]
        session.add_all(rows)
        session.commit()
        return [r.id or 0 for r in rows]


_ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 43\r\n\r\n"
    b'{"ok":true,"result":{"message_id":1,"x":0}}'
)


_RECEIVED: list[list[object]] = []  # [arrival, answer, text]
ANSWER_DELAY = 0.040  # a real round trip to Telegram's servers


class _Requests(asyncio.Protocol):
    """A bare HTTP/1.1 server: each request (kept-alive connections, bodies by length) goes
    to `handle` with the time its last byte arrived (CLOCK_MONOTONIC, shared by all
    processes). Far less of the machine than an aiohttp server, which matters when the
    receiver shares two cores with the service it measures."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        at = time.monotonic()
        self._buffer += data
        while (head_end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:head_end].lower()
            length = 0
            if (start := head.find(b"content-length:")) >= 0:
                length = int(head[start + 15 :].split(b"\r\n", 1)[0])
            end = head_end + 4 + length
            if len(self._buffer) < end:
                return
            body, self._buffer = self._buffer[head_end + 4 : end], self._buffer[end:]
            self.handle(at, head, body)

    def handle(self, at: float, head: bytes, body: bytes) -> None:
        raise NotImplementedError

    def json(self, value: object) -> None:
        listing = json.dumps(value).encode()
        self._transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(listing)}\r\n\r\n".encode()
            + listing
        )


class _BotApiReceiver(_Requests):
    """sendMessage requests stamped as their last byte arrives, each answered `delay` seconds
    later with `"ok": true`, as Telegram's servers would be, into `_RECEIVED` (arrival,
    answer, text); GET /received lists them."""

    def __init__(self, delay: float) -> None:
        self._delay = delay

    def handle(self, at: float, head: bytes, body: bytes) -> None:
        if head.startswith(b"get /received"):
            self.json(_RECEIVED)
            return
        entry: list[object] = [at, at + self._delay, json.loads(body)["text"]]
        _RECEIVED.append(entry)
        if self._delay <= 0:
            self._transport.write(_ANSWER)
            return
        asyncio.get_running_loop().call_later(self._delay, self._answer, entry)

    def _answer(self, entry: list[object]) -> None:
        entry[1] = time.monotonic()
        self._transport.write(_ANSWER)


async def _serve_bot_api_receiver(port: int, delay: float = ANSWER_DELAY) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _BotApiReceiver(delay), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


class _FakeBotApi:
    """(a)'s fake Bot API at `url`; `received()`: (arrival, answer, text) of each
    sendMessage."""

    def __init__(self, url: str, local: FakeTelegram | None) -> None:
        self.url = url
        self._local = local

    async def received(self) -> list[tuple[float, float, str]]:
        if self._local is not None:
            return [(s.at, s.at, s.text) for s in self._local.sent]
        async with ClientSession() as http, http.get(f"{self.url}/received") as r:
            return [(at, answered, text) for at, answered, text in await r.json()]


@contextlib.asynccontextmanager
async def _fake_bot_api(in_process: bool, delay: float) -> AsyncIterator[_FakeBotApi]:
    """In its own process by default, as Telegram's servers are not in ours: here it would
    read a request only when the loop got round to it, after the service had prepared the
    tick's other messages, and its own work would count as the service's. There it is a bare
    socket server that stamps each request as its last byte arrives: FakeTelegram (aiohttp)
    stamps it when its handler runs, after parsing the burst of requests before it, which
    added ~2 ms of the fake's own queueing to ten alerts sent at once."""
    if in_process:
        async with FakeTelegram() as tg:
            yield _FakeBotApi(tg.url, tg)
        return
    port = free_port()
    fake = _FakeBotApi(f"http://127.0.0.1:{port}", None)
    async with _own_process("_serve_bot_api_receiver", port, fake.received, delay):
        yield fake


@contextlib.asynccontextmanager
async def _own_process(
    server: str, port: int, probe: Callable[[], Awaitable[object]], *args: float
) -> AsyncIterator[None]:
    """This module's `server(port, *args)` running in a process of its own, once `probe()`
    answers."""
    call = ", ".join(repr(a) for a in (port, *args))
    serve = f"import asyncio, delivery; asyncio.run(delivery.{server}({call}))"
    process = subprocess.Popen([sys.executable, "-c", serve], cwd=Path(__file__).parent)
    try:
        for _ in range(400):
            try:
                await probe()
                break
            except ClientError:
                await asyncio.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(10)


async def latency(
    seconds: float, *, together: int = 1, fake_in_process: bool = False, delay: float = 0.04
) -> tuple[list[float], list[float]]:
    """(a): per alert, milliseconds from evaluation to the sendMessage request's arrival (the
    service's own time) and to Telegram's answer (end to end), with `together` alerts per
    push (1: 10 symbols ticked at 100/s; 10: 100 symbols at 10/s)."""
    tick, background, levels = 0.01 * together, 10 * together, 1000 // together
    # A staircase over the levels and back: each level is crossed again long after the
    # rules' 1 s cooldown.
    up = [f"{p}.5" for p in range(100, 100 + levels)]
    script = {"HOT-USDT": (up + up[::-1][1:-1]) * 500}
    with tempfile.TemporaryDirectory() as tmp:
        script_path = Path(tmp) / "script.json"
        script_path.write_text(json.dumps(script))
        port = free_port()
        url = f"ws://127.0.0.1:{port}/"
        command = [
            sys.executable, "-m", "alerts.cli", "simulate", "--port", str(port),
            "--symbols", "HOT-USDT", "--generate", str(background), "--tick-interval", str(tick),
            "--seed", "1", "--script", str(script_path),
        ]  # fmt: skip
        server = subprocess.Popen(command, env={**os.environ, "ALERTS_LOG_LEVEL": "WARNING"})
        database_url = f"sqlite:///{tmp}/a.db"
        upgrade(database_url)
        db = Database(database_url)
        user_id = _user(db)
        destinations = _chats(db, user_id, 1_000, 1_000)
        with db.session() as session:
            for i, destination in enumerate(destinations):
                level = str(101 + i // together)  # `together` rules on each level
                rule = Rule(
                    user_id=user_id,
                    kind="price_cross",
                    name=f"hot {i}",
                    symbol="HOT-USDT",
                    params={"symbol": "HOT-USDT", "level": level, "direction": "any"},
                    trigger="every",
                    cooldown_seconds=1,
                )
                session.add(rule)
                session.flush()
                session.add(RuleDestination(rule_id=rule.id or 0, destination_id=destination))
            session.commit()
        # Background load: one ticker subscription per symbol, through a rule far away.
        with db.session() as session:
            for i in range(background):
                symbol = f"SYM{i}-USDT"
                session.add(
                    Rule(
                        user_id=user_id,
                        kind="price_cross",
                        name="far",
                        symbol=symbol,
                        params={"symbol": symbol, "level": "0.0000001"},
                    )
                )
            session.commit()
        try:
            await wait_for_server(url)
            async with _fake_bot_api(fake_in_process, delay) as tg:
                limits = Limits(bot_per_second=10_000, private_interval=0.0)
                telegram = TelegramNotifier(TOKEN, api_url=tg.url, limiter=RateLimiter(limits))
                worker = DeliveryWorker(db, SecretBox(KEY), telegram=telegram)
                feed = FeedConfig(url=url, backoff=Backoff(initial=0.05, maximum=1.0))
                engine = Engine(db, EngineConfig(feed=feed), SecretBox(KEY))
                await engine.start()
                task = asyncio.create_task(worker.run())
                await asyncio.sleep(2.0)  # warm up
                first = len(await tg.received())
                mono_to_wall = time.time() - time.monotonic()
                await asyncio.sleep(seconds)
                sent = (await tg.received())[first:]
                await engine.stop()
                await worker.stop()
                await task
                await telegram.close()
                pushes = engine.public.state.channel("ticker").events
                if os.environ.get("BENCH_DEBUG"):
                    _breakdown(db)
        finally:
            server.terminate()
            server.wait(10)
            db.dispose()
    samples, ends = [], []
    for at, answered, text in sent:
        stamp = text.rsplit("<code>", 1)[-1].split("</code>")[0]
        fired = datetime.fromisoformat(stamp).timestamp()
        samples.append((at + mono_to_wall - fired) * 1000)
        ends.append((answered + mono_to_wall - fired) * 1000)
    print(
        f"(a) {together} per push: {len(sent)} alerts in {seconds:g} s "
        f"({len(sent) / seconds:.0f}/s), {pushes:,} pushes in all"
    )
    return samples, ends


def _breakdown(db: Database) -> None:
    from sqlalchemy import text

    with db.engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT e.fired_at, d.created_at, a.started_at, a.duration_ms FROM events e"
                " JOIN deliveries d ON d.event_id = e.id"
                " JOIN delivery_attempts a ON a.delivery_id = d.id"
            )
        ).all()
    waits = sorted(
        (datetime.fromisoformat(str(r[2])) - datetime.fromisoformat(str(r[0]))).total_seconds()
        * 1000
        for r in rows
    )
    sends = sorted(r[3] for r in rows)
    print(f"  queue wait p50 {waits[len(waits) // 2]:.1f} ms, send p50 {sends[len(sends) // 2]} ms")


async def burst(count: int, database_url: str) -> float:
    """(b): seconds from the push that fires `count` rules at once (its evaluation) to the
    last of their events and deliveries committed, with the engine as in the service."""
    config = SimulatorConfig(symbols=("HOT-USDT",), tick_interval=3600)
    async with Simulator(config) as sim:
        sim.set_price("HOT-USDT", Decimal("69000"))
        upgrade(database_url)
        db = Database(database_url)
        user_id = _user(db)
        [chat] = _chats(db, user_id, 4242, 1)
        with db.session() as session:
            rules = [
                Rule(
                    user_id=user_id,
                    kind="price_cross",
                    name=f"burst {i}",
                    symbol="HOT-USDT",
                    params={"symbol": "HOT-USDT", "level": "70000", "direction": "up"},
                    trigger="every",
                )
                for i in range(count)
            ]
            session.add_all(rules)
            session.flush()
            session.add_all(RuleDestination(rule_id=r.id or 0, destination_id=chat) for r in rules)
            session.commit()
        feed = FeedConfig(url=sim.url, backoff=Backoff(initial=0.05, maximum=1.0))
        engine = Engine(db, EngineConfig(feed=feed), SecretBox(KEY))
        await engine.start()
        try:
            for _ in range(400):
                if any(k[:2] == ("ticker", "HOT-USDT") for ks in sim.subscriptions() for k in ks):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # the first price seen
            sim.set_price("HOT-USDT", Decimal("71000"))
            while engine.recorder.recorded < count:
                await asyncio.sleep(0.001)
            done = time.time()
        finally:
            await engine.stop()
        from sqlalchemy import text

        with db.engine.connect() as conn:
            fired = conn.execute(text("SELECT MIN(fired_at) FROM events")).scalar()
            deliveries = conn.execute(text("SELECT COUNT(*) FROM deliveries")).scalar()
        db.dispose()
    first = fired if isinstance(fired, datetime) else datetime.fromisoformat(str(fired))
    if first.tzinfo is None:
        first = first.replace(tzinfo=UTC)
    seconds = done - first.timestamp()
    print(f"(b) {count:,} firings from one push: {deliveries:,} deliveries in {seconds:.2f} s")
    return seconds


async def send_rate(count: int) -> tuple[float, int]:
    """(d): messages/s to distinct chats under the real limits, and 429s received."""
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/b.db"
        upgrade(database_url)
        db = Database(database_url)
        user_id = _user(db)
        destinations = _chats(db, user_id, 100_000, count)
        with db.session() as session:
            for d in destinations:
                record_event(
                    session, user_id=user_id, rule_id=None, rule_name="burst", kind="spread",
                    symbol="BTC-USDT", values={"percent": "1"}, destination_ids=[d], now=utcnow(),
                )  # fmt: skip
            session.commit()
        async with FakeTelegram() as tg:
            tg.enforce_scale = 1.0
            telegram = TelegramNotifier(TOKEN, api_url=tg.url)
            worker = DeliveryWorker(
                db, SecretBox(KEY), telegram=telegram, config=WorkerConfig(batch=count)
            )
            started = time.monotonic()
            while await worker.run_once():
                pass
            elapsed = time.monotonic() - started
            await telegram.close()
            rejected = tg.rejected
            first, last = tg.sent[0].at, tg.sent[-1].at
        db.dispose()
    rate = (len(tg.sent) - 1) / (last - first) if len(tg.sent) > 1 else 0.0
    print(f"(d) {len(tg.sent)} messages in {elapsed:.1f} s")
    return rate, rejected


_HOOKS = [0]  # webhook requests received
WARM_UP = 300  # (c): sends before the measured ones, when warm
_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class _HookReceiver(_Requests):
    """(c)'s receiver: 200 to every POST; GET /count says how many it received."""

    def handle(self, at: float, head: bytes, body: bytes) -> None:
        if head.startswith(b"get /count"):
            self.json(_HOOKS[0])
            return
        _HOOKS[0] += 1
        self._transport.write(_OK)


async def _serve_hooks(port: int) -> None:
    """Run `_HookReceiver` on `port` until killed (the receiver's own process)."""
    server = await asyncio.get_running_loop().create_server(_HookReceiver, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


async def _received(port: int, count: int) -> None:
    """Wait until the receiver has `count` requests."""
    while await _hook_count(port) < count:
        await asyncio.sleep(0.05)


async def _hook_count(port: int) -> int:
    async with ClientSession() as http, http.get(f"http://127.0.0.1:{port}/count") as r:
        return int(await r.json())


@contextlib.asynccontextmanager
async def _hook_receiver(in_process: bool) -> AsyncIterator[int]:
    """(c)'s receiver, on the port it yields. In its own process by default: a webhook's
    server is not in ours, and here its work (an HTTP server answering hundreds of requests a
    second) would share the GIL with the sending threads and count as the service's."""
    port = free_port()
    if in_process:
        loop = asyncio.get_running_loop()
        async with await loop.create_server(_HookReceiver, "127.0.0.1", port):
            yield port
        return
    async with _own_process("_serve_hooks", port, functools.partial(_hook_count, port)):
        yield port


async def apprise_rate(
    count: int,
    *,
    processes: int = APPRISE_PROCESSES,
    receiver_in_process: bool = False,
    warm: bool = True,
) -> float:
    """(c): json:// deliveries per second to a local receiver, the sends in `processes`
    helper processes (0: threads of this process)."""
    async with _hook_receiver(receiver_in_process) as port:
        helpers = resource.getrusage(resource.RUSAGE_CHILDREN)
        elapsed, cpu, sent = await _apprise_run(count, port, processes, warm=warm)
        # The helpers have ended (the receiver, also a child, is still running).
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        helper_cpu = after.ru_utime + after.ru_stime - helpers.ru_utime - helpers.ru_stime
        received = await _hook_count(port) - (WARM_UP if warm else 0)
    # CPU per delivery is the steadier figure on a shared machine, where the rate varies.
    start = f"after {WARM_UP} sends" if warm else "their start included"
    where = f"{processes} helper processes, {start}" if processes else "threads"
    sends = count + (WARM_UP if warm else 0)  # what the helpers' CPU (and start) went on
    print(
        f"(c) {received} deliveries received ({sent} recorded as sent) in {elapsed:.1f} s "
        f"({where}); CPU per delivery: {cpu / count * 1000:.2f} ms in this process, "
        f"{helper_cpu / sends * 1000:.2f} ms in helpers (their start included)"
    )
    return received / elapsed


async def _apprise_run(
    count: int, port: int, processes: int, *, warm: bool
) -> tuple[float, float, int]:
    box = SecretBox(KEY)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/c.db"
        upgrade(database_url)
        db = Database(database_url)
        user_id = _user(db)
        with db.session() as session:
            hook = Destination(
                user_id=user_id,
                kind="apprise",
                name="hook",
                url_sealed=box.seal(f"json://127.0.0.1:{port}/hook"),
            )
            session.add(hook)
            session.commit()
            hook_id = hook.id or 0

        def enqueue(n: int) -> None:
            with db.session() as session:
                for _ in range(n):
                    record_event(
                        session, user_id=user_id, rule_id=None, rule_name="r", kind="spread",
                        symbol="BTC-USDT", values={"percent": "1"}, destination_ids=[hook_id],
                        now=utcnow(),
                    )  # fmt: skip
                session.commit()

        # The receiver is local: as ALERTS_ALLOW_PRIVATE_TARGETS=true (the guard still runs).
        notifier = AppriseNotifier(processes=processes, allow_private=True)
        worker = DeliveryWorker(
            db, box, telegram=None, apprise=notifier, config=WorkerConfig(batch=500)
        )
        if warm:  # as a running service is: its helpers started by the sends before
            enqueue(WARM_UP)
            while await worker.run_once():
                pass
            await _received(port, WARM_UP)
        enqueue(count)
        sent_before = worker.ledger.sent
        started, cpu = time.monotonic(), time.process_time()
        while await worker.run_once():
            pass
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        await notifier.close()
        db.dispose()
    return elapsed, cpu, worker.ledger.sent - sent_before


async def main() -> None:
    """Run the three parts and print the figures against the goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--only", choices=["a", "b", "c", "d"], help="run one part alone")
    parser.add_argument(
        "--answer-delay",
        type=float,
        default=ANSWER_DELAY,
        help="(a): seconds the fake Bot API takes to answer (default: 0.04, a real round trip)",
    )
    parser.add_argument("--burst", type=int, default=10_000, help="(b): firings from one push")
    parser.add_argument(
        "--receiver-in-process", action="store_true", help="(c)'s receiver in this process"
    )
    parser.add_argument(
        "--apprise-processes",
        type=int,
        default=APPRISE_PROCESSES,
        help="(c): helper processes for Apprise sends (default: the service's)",
    )
    parser.add_argument(
        "--fake-in-process", action="store_true", help="(a)'s fake Bot API in this process"
    )
    parser.add_argument(
        "--together", type=int, choices=[1, 10], help="(a): only this many alerts per push"
    )
    args = parser.parse_args()
    shapes = [args.together] if args.together else [1, 10]
    lines = []
    if args.only in (None, "a"):
        for n in shapes:
            measured = await latency(
                args.seconds,
                together=n,
                fake_in_process=args.fake_in_process,
                delay=args.answer_delay,
            )
            lines.append(_latency_line(measured, n))
    if args.only in (None, "b"):
        with tempfile.TemporaryDirectory() as tmp:
            took = await burst(args.burst, f"sqlite:///{tmp}/b.db")
        lines.append(
            f"(b) SQLite: {args.burst:,} firings from one push recorded in {took:.2f} s "
            f"(goal <= 1 s: ratio {took:.2f})"
        )
        if os.environ.get("TEST_DATABASE_URL"):
            with temporary_database(os.environ["TEST_DATABASE_URL"], "alerts_bench") as url:
                took = await burst(args.burst, url)
            lines.append(
                f"(b) PostgreSQL: {args.burst:,} firings from one push recorded in {took:.2f} s "
                f"(goal <= 1 s: ratio {took:.2f})"
            )
    if args.only in (None, "c"):
        options = {
            "processes": args.apprise_processes,
            "receiver_in_process": args.receiver_in_process,
        }
        cold = await apprise_rate(3_000, warm=False, **options)
        warm = await apprise_rate(3_000, **options)
        lines.append(
            f"(c) Apprise json:// {warm:.0f} deliveries/s with the helpers running (goal >= "
            f"1,000: ratio {warm / 1000:.2f}); {cold:.0f}/s with their start included"
        )
    if args.only in (None, "d"):
        rate, rejected = await send_rate(300)
        lines.append(
            f"(d) send rate {rate:.1f}/s of the 30/s cap: ratio {rate / 30:.3f} "
            f"(goal >= 0.93), 429 received: {rejected}"
        )
    print()
    print("\n".join(lines))


def _latency_line(measured: tuple[list[float], list[float]], together: int) -> str:
    own, ends = measured
    p50, p99, e99 = statistics.median(own), _pct(own, 0.99), _pct(ends, 0.99)
    return (
        f"(a) {together:>2} per push: service's own time p50 {p50:.1f} ms (goal <= 3: ratio "
        f"{p50 / 3:.2f}), p99 {p99:.1f} ms (goal <= 10: ratio {p99 / 10:.2f}); end to end p99 "
        f"{e99:.1f} ms (goal <= 55: ratio {e99 / 55:.2f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
