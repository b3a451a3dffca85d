"""Webhook deliveries side by side with Prometheus Alertmanager: N alerts, each POSTed as a
webhook of its own to the same local receiver, through this service and through Alertmanager,
measured in the same run.

Service: N events in an SQLite database, one delivery each to a webhook destination with a
signing secret (so the HMAC `X-Alerts-Signature` is in the measured path), sent by a delivery
worker as `alerts worker` builds and runs it (`WebhookNotifier` with its default pool,
private targets allowed as with ALERTS_ALLOW_PRIVATE_TARGETS=true, the receiver being on
127.0.0.1: the address guard still runs; its start-up heap frozen, claiming again while it
sends, the service's default batch (--batch) at a time): deliveries/s from the worker's start
to the last outcome recorded, after --warm sends (a running service, its connections open).

Alertmanager: its binary (`prometheus-alertmanager`, or `alertmanager`, on PATH) with a config
of its own in a temporary directory: one route to one receiver, `webhook_configs` to the same
receiver with `send_resolved: false`, `group_by: ['...']` (each alert a group of its own, so
a webhook of its own) and `group_wait: 0s` (sent at once), `group_interval` and
`repeat_interval` of an hour (sent once); no clustering, storage in the temporary directory.
N alerts with distinct labels are POSTed to /api/v2/alerts, 500 per request, one request
after the other: deliveries/s from the first POST to the receiver's N-th webhook (its API's
intake included: the service's events were in its database before its clock started), after
--warm alerts the same way.

The receiver runs in its own process (a webhook's server is not in ours, and here its work
would share this process's interpreter and count as the service's): a bare HTTP/1.1 server
on a socket that answers 200 to every POST on kept-alive connections, counts them and stamps
the last one's arrival (CLOCK_MONOTONIC, shared by all processes); the same receiver serves
both halves, its count read before and after each.

Goals: >= 2,000 deliveries/s, and >= 1.0 x Alertmanager's rate on the same receiver in the
same run.

    .venv/bin/python bench/webhooks.py [--count 5000] [--warm 500] [--batch 200]
    .venv/bin/python bench/webhooks.py --alertmanager /path/to/alertmanager

Getting Alertmanager (this benchmark installs nothing): `sudo apt-get install
prometheus-alertmanager` on Debian or Ubuntu (the package may start a service of its own on
port 9093: it does no harm here, `sudo systemctl disable --now prometheus-alertmanager` stops
it), or the release binary from https://prometheus.io/download/#alertmanager put on PATH (or
given with --alertmanager). Without it, the Alertmanager half is reported as skipped and the
service's still runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import ClientError, ClientSession
from feed_throughput import free_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.db.migrate import upgrade
from alerts.db.models import Destination, User, utcnow
from alerts.db.outbox import NewEvent, enqueue
from alerts.db.session import Database
from alerts.delivery.webhook import WebhookNotifier
from alerts.delivery.worker import DeliveryWorker, WorkerConfig
from alerts.security import SecretBox
from alerts.wiring import freeze_heap

KEY = "kPDM3VNvUEl4Fq8D9hLO8wN3Jd6wHvNZXJ9UQQ2-2sU="
GOAL = 2_000.0  # deliveries/s
POST_BATCH = 500  # alerts per POST to Alertmanager's API
BATCH = WorkerConfig().batch  # deliveries a worker claims at a time, as the service runs
BINARIES = ("prometheus-alertmanager", "alertmanager")
HOW_TO_GET = (
    "sudo apt-get install prometheus-alertmanager (Debian/Ubuntu), or the release binary "
    "from https://prometheus.io/download/#alertmanager on PATH"
)


@dataclass
class Tally:
    """What the receiver has counted so far, and the CPU its process has used."""

    webhooks: int
    last: float  # the last webhook's arrival (CLOCK_MONOTONIC)
    connections: int  # open connections that have carried a webhook
    cpu: float


@dataclass
class Half:
    """One half's figures: webhooks the receiver counted, in `elapsed` seconds."""

    received: int
    elapsed: float
    cpu: float  # seconds of CPU of the sender (this process, or Alertmanager's)
    receiver_cpu: float
    connections: int

    @property
    def rate(self) -> float:
        return self.received / self.elapsed if self.elapsed > 0 else 0.0

    def costs(self) -> str:
        """CPU per webhook of the sender and of the receiver, and how busy the receiver was."""
        n = max(self.received, 1)
        busy = self.receiver_cpu / self.elapsed if self.elapsed > 0 else 0.0
        return (
            f"over {self.connections} connections; CPU per webhook {self.cpu / n * 1000:.3f} ms "
            f"sending, {self.receiver_cpu / n * 1000:.3f} ms receiving (receiver busy "
            f"{busy:.0%} of the time)"
        )


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a running process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the receiver (its own process) --------------------------------------------------------

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
_COUNT = [0, 0.0, 0]  # webhooks received, the last one's arrival, open connections that sent one


class _Receiver(asyncio.Protocol):
    """200 to every POST (kept-alive connections, bodies by length), counted and the last one
    stamped as its last byte arrives; GET /count answers `_COUNT`."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._buffer = b""
        self._posted = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._posted:
            _COUNT[2] -= 1

    def data_received(self, data: bytes) -> None:
        at = time.monotonic()
        self._buffer += data
        answers = []
        while (head_end := self._buffer.find(b"\r\n\r\n")) >= 0:
            head = self._buffer[:head_end].lower()
            length = 0
            if (start := head.find(b"content-length:")) >= 0:
                length = int(head[start + 15 :].split(b"\r\n", 1)[0])
            end = head_end + 4 + length
            if len(self._buffer) < end:
                break
            self._buffer = self._buffer[end:]
            if head.startswith(b"get /count"):
                listing = json.dumps(_COUNT).encode()
                answers.append(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(listing)
                )
                answers.append(listing)
                continue
            _COUNT[0] += 1
            _COUNT[1] = at
            if not self._posted:
                self._posted = True
                _COUNT[2] += 1
            answers.append(_OK)
        if answers:
            self._transport.write(b"".join(answers))


async def _serve(port: int) -> None:
    """Run `_Receiver` on `port` until terminated (the receiver's own process)."""
    server = await asyncio.get_running_loop().create_server(_Receiver, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


class Receiver:
    """The receiver's process, as seen from here."""

    def __init__(self, port: int, pid: int, http: ClientSession) -> None:
        self.port = port
        self.pid = pid
        self._http = http

    async def tally(self) -> Tally:
        """What it has counted so far."""
        async with self._http.get(f"http://127.0.0.1:{self.port}/count") as r:
            webhooks, last, connections = await r.json()
        return Tally(int(webhooks), float(last), int(connections), _cpu_seconds(self.pid))

    async def until(self, count: int, timeout: float) -> Tally:
        """Its tally once it has counted `count` webhooks, or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while (tally := await self.tally()).webhooks < count and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return tally


@contextlib.asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    """The receiver in a process of its own, once it answers."""
    port = free_port()
    serve = f"import asyncio, webhooks; asyncio.run(webhooks._serve({port}))"
    process = subprocess.Popen([sys.executable, "-c", serve], cwd=Path(__file__).parent)
    try:
        async with ClientSession() as http:
            seen = Receiver(port, process.pid, http)
            for _ in range(400):
                try:
                    await seen.tally()
                    break
                except ClientError:
                    await asyncio.sleep(0.05)
            yield seen
    finally:
        process.terminate()
        process.wait(10)


def _half(before: Tally, after: Tally, elapsed: float, cpu: float) -> Half:
    return Half(
        received=after.webhooks - before.webhooks,
        elapsed=elapsed,
        cpu=cpu,
        receiver_cpu=after.cpu - before.cpu,
        connections=after.connections,  # the sender's, kept open until its half ends
    )


# --- the service ---------------------------------------------------------------------------


async def service(hooks: Receiver, count: int, warm: int, batch: int) -> Half:
    """N webhook deliveries sent by a delivery worker, from the first claim to the last
    outcome recorded."""
    box = SecretBox(KEY)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite:///{tmp}/w.db"
        upgrade(database_url)
        db = Database(database_url)
        with db.session() as session:
            user = User(name="bench")
            session.add(user)
            session.flush()
            hook = Destination(
                user_id=user.id or 0,
                kind="webhook",
                name="hook",
                url_sealed=box.seal(f"http://127.0.0.1:{hooks.port}/hook"),
                secret_sealed=box.seal("bench-signing-secret"),
            )
            session.add(hook)
            session.commit()
            user_id, hook_id = user.id or 0, hook.id or 0

        def add(n: int) -> None:
            now = utcnow()
            values = {"price": "70001.5", "level": "70000", "direction": "up"}
            events = [
                NewEvent(
                    user_id=user_id,
                    rule_id=None,
                    rule_name=f"BTC 70k {i}",
                    kind="price_cross",
                    symbol="BTC-USDT",
                    values=values,
                    destination_ids=[hook_id],
                    fired_at=now,
                )
                for i in range(n)
            ]
            with db.session() as session:
                enqueue(session, events)
                session.commit()

        # The receiver is local: as ALERTS_ALLOW_PRIVATE_TARGETS=true (the guard still runs).
        notifier = WebhookNotifier(allow_private=True)
        worker = DeliveryWorker(
            db, box, telegram=None, webhooks=notifier, config=WorkerConfig(batch=batch)
        )
        freeze_heap()  # as `alerts worker` does once it is wired
        try:
            if warm:  # as a running service is: its connections open, its code warm
                add(warm)
                while await worker.run_once():
                    pass
            add(count)
            before = await hooks.tally()
            sent_before = worker.ledger.sent
            started, cpu = time.monotonic(), time.process_time()
            await _drain(worker, count)
            elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
            after = await hooks.tally()
        finally:
            await notifier.close()
            db.dispose()
    half = _half(before, after, elapsed, cpu)
    ledger = worker.ledger
    print(
        f"service: {half.received:,} webhooks received ({ledger.sent - sent_before:,} recorded "
        f"as sent, {ledger.failed} failed, {ledger.dead} given up) in {elapsed:.2f} s, claimed "
        f"{batch} at a time, {half.costs()}"
    )
    return half


async def _drain(worker: DeliveryWorker, count: int) -> None:
    """Run the worker as the service does (claiming again while it sends) until `count` more
    deliveries are recorded as sent, then stop it (a worker runs once)."""
    goal = worker.ledger.sent + count
    task = asyncio.create_task(worker.run())
    try:
        while worker.ledger.sent < goal:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("the worker stopped early")
            await asyncio.sleep(0.002)
        await worker.ledger.drain()  # the last outcomes are in the database
    finally:
        await worker.stop()
        await task


# --- Alertmanager --------------------------------------------------------------------------


def find_alertmanager(given: str | None) -> str | None:
    """The Alertmanager binary: `given`, or the first of `BINARIES` on PATH."""
    if given:
        return shutil.which(given) or (given if os.access(given, os.X_OK) else None)
    for name in BINARIES:
        if found := shutil.which(name):
            return found
    return None


def _config(receiver_port: int) -> str:
    # JSON is YAML: no YAML library needed.
    return json.dumps(
        {
            "route": {
                "receiver": "hook",
                "group_by": ["..."],
                "group_wait": "0s",
                "group_interval": "1h",
                "repeat_interval": "1h",
            },
            "receivers": [
                {
                    "name": "hook",
                    "webhook_configs": [
                        {"url": f"http://127.0.0.1:{receiver_port}/hook", "send_resolved": False}
                    ],
                }
            ],
        }
    )


@contextlib.asynccontextmanager
async def _alertmanager(
    binary: str, receiver_port: int, tmp: str
) -> AsyncIterator[tuple[str, int]]:
    """Alertmanager running on a free port, ready; yields its URL and process id."""
    config = Path(tmp) / "alertmanager.yml"
    config.write_text(_config(receiver_port))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        binary, f"--config.file={config}", f"--storage.path={tmp}/data",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
        "--log.level=warn",
    ]  # fmt: skip
    log = (Path(tmp) / "alertmanager.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        async with ClientSession() as http:
            for _ in range(200):
                if process.poll() is not None:
                    break
                with contextlib.suppress(ClientError):
                    async with http.get(f"{url}/-/ready") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.05)
            else:
                raise RuntimeError("Alertmanager did not become ready in 10 s")
        if process.poll() is not None:
            log.flush()
            tail = (Path(tmp) / "alertmanager.log").read_text()[-2000:]
            raise RuntimeError(f"Alertmanager exited ({process.returncode}):\n{tail}")
        yield url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


async def _post_alerts(http: ClientSession, url: str, prefix: str, count: int) -> None:
    """`count` firing alerts with distinct labels, `POST_BATCH` per request."""
    now = datetime.now(UTC)
    starts, ends = now.isoformat(), (now + timedelta(hours=1)).isoformat()
    for first in range(0, count, POST_BATCH):
        alerts = [
            {
                "labels": {"alertname": "BTC 70k", "symbol": "BTC-USDT", "n": f"{prefix}{i}"},
                "annotations": {"price": "70001.5", "level": "70000", "direction": "up"},
                "startsAt": starts,
                "endsAt": ends,
            }
            for i in range(first, min(first + POST_BATCH, count))
        ]
        async with http.post(f"{url}/api/v2/alerts", json=alerts) as r:
            if r.status != 200:
                raise RuntimeError(f"Alertmanager refused the alerts: {r.status} {await r.text()}")


async def alertmanager(binary: str, hooks: Receiver, count: int, warm: int, timeout: float) -> Half:
    """N alerts through Alertmanager, from the first POST to the receiver's N-th webhook."""
    with tempfile.TemporaryDirectory() as tmp:
        async with _alertmanager(binary, hooks.port, tmp) as (url, pid), ClientSession() as http:
            if warm:  # as for the service: its connections open, its code warm
                before = await hooks.tally()
                await _post_alerts(http, url, "warm-", warm)
                await hooks.until(before.webhooks + warm, timeout)
            before = await hooks.tally()
            cpu, started = _cpu_seconds(pid), time.monotonic()
            await _post_alerts(http, url, "", count)
            after = await hooks.until(before.webhooks + count, timeout)
            cpu = _cpu_seconds(pid) - cpu
    # Nothing received: the last arrival is an earlier one, so the whole wait counts.
    elapsed = after.last - started if after.webhooks > before.webhooks else timeout
    half = _half(before, after, elapsed, cpu)
    late = "" if half.received >= count else f", timed out after {timeout:g} s"
    print(
        f"Alertmanager: {half.received:,} webhooks received (of {count:,} alerts posted{late}) "
        f"in {half.elapsed:.2f} s, {half.costs()}"
    )
    return half


# --- the run -------------------------------------------------------------------------------


async def main() -> None:
    """Run both halves against one receiver and print the figures against the goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5_000, help="webhooks measured per half")
    parser.add_argument("--warm", type=int, default=500, help="webhooks sent first, per half")
    parser.add_argument(
        "--batch", type=int, default=BATCH, help=f"the worker's claim size (default: {BATCH})"
    )
    parser.add_argument("--alertmanager", help="Alertmanager's binary (default: found on PATH)")
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for Alertmanager's webhooks"
    )
    args = parser.parse_args()
    binary = find_alertmanager(args.alertmanager)
    async with receiver() as hooks:
        ours = await service(hooks, args.count, args.warm, args.batch)
        theirs = None
        if binary is None:
            where = args.alertmanager or f"{' or '.join(BINARIES)} on PATH"
            print(f"Alertmanager: not found ({where}); get it with")
            print(f"  {HOW_TO_GET}")
        else:
            theirs = await alertmanager(binary, hooks, args.count, args.warm, args.timeout)
    print()
    print(
        f"service: {ours.rate:,.0f} webhook deliveries/s, {ours.received:,} in "
        f"{ours.elapsed:.2f} s (goal >= 2,000: ratio {ours.rate / GOAL:.2f})"
    )
    if theirs is None:
        print("Alertmanager: skipped (not found, see above), so no ratio to it")
        return
    ratio = ours.rate / theirs.rate if theirs.rate else float("inf")
    print(
        f"Alertmanager: {theirs.rate:,.0f} webhook deliveries/s, {theirs.received:,} in "
        f"{theirs.elapsed:.2f} s; service / Alertmanager {ratio:.2f} (goal >= 1.0: ratio "
        f"{ratio:.2f})"
    )


if __name__ == "__main__":
    asyncio.run(main())
