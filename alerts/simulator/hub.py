"""Client connections, their subscriptions, and fan-out of frames with flow control and faults."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import deque
from collections.abc import Iterable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from alerts.simulator.protocol import PRIVATE_CHANNELS, SubKey, malformed

logger = logging.getLogger("alerts.simulator")

#: Above this many queued frames the market waits for the client to catch up ...
HIGH_WATER = 1_000
#: ... until it is back under this many ...
LOW_WATER = 100
#: ... for at most this long; then the client is dropped as too slow.
SLOW_CLIENT_GRACE = 2.0
#: A client this far behind is dropped at once, whatever produced the frames.
MAX_BACKLOG = 20_000
#: Symbol-less public routes (the `tickers` channel) are indexed under this name.
ALL_SYMBOLS = "*"

_connection_ids = itertools.count(1)


class Faults:
    """Fault injection state shared by every connection."""

    def __init__(self, malformed_rate: float, rng: random.Random) -> None:
        self.malformed_rate = malformed_rate
        self.rng = rng
        self.stalled_until = 0.0
        self.rate_limited = 0

    def stall_remaining(self) -> float:
        """Seconds left in the current stall (0 when not stalled)."""
        return max(0.0, self.stalled_until - asyncio.get_running_loop().time())


class Connection:
    """One client: its user, subscriptions and a queue of frames drained by its own writer."""

    def __init__(self, ws: ServerConnection, faults: Faults) -> None:
        self.ws = ws
        self.id = next(_connection_ids)
        self.user: int | None = None
        self.subs: set[SubKey] = set()
        self.malformed_pending = 0
        self.malformed_sent = 0
        self.outbox: deque[str] = deque()
        self._faults = faults
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._closed = False

    def route(self, key: SubKey) -> SubKey:
        """Where frames for `key` are published; private channels are per user."""
        if key[0] in PRIVATE_CHANNELS:
            return (f"user:{self.user}", *key)
        return key

    def enqueue(self, frame: str) -> None:
        """Queue a frame for the writer; never blocks."""
        self.outbox.append(frame)
        self._wakeup.set()

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        self._closed = True
        self._drained.set()
        self.ws.transport.abort()

    async def wait_drained(self) -> None:
        """Wait until the queue is short again or the connection is gone."""
        while len(self.outbox) > LOW_WATER and not self._closed:
            self._drained.clear()
            await self._drained.wait()

    async def run_writer(self) -> None:
        """Send queued frames in order until the connection ends."""
        try:
            await self._send_queued()
        except ConnectionClosed:
            logger.debug("connection %s closed while sending", self.id)
        except Exception:
            # Without its writer a client would wait forever: drop it so that it reconnects.
            # Carrying on is safe: the writer is this connection's alone, and dropping it ends
            # the connection's reader, which forgets its subscriptions; others are untouched.
            logger.exception(
                "writer of connection %s (user %s) failed with %d frames unsent",
                self.id,
                self.user,
                len(self.outbox),
            )
            self.ws.transport.abort()
        finally:
            self._closed = True
            self._drained.set()

    async def _send_queued(self) -> None:
        while True:
            while not self.outbox:
                self._wakeup.clear()
                await self._wakeup.wait()
            pause = self._faults.stall_remaining()
            if pause > 0:
                # A stalled exchange holds back even its answers.
                await asyncio.sleep(pause)
                continue
            await self.ws.send(self.outbox.popleft())
            if len(self.outbox) <= LOW_WATER:
                self._drained.set()


class Hub:
    """Registry of connections and of who is subscribed to what."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.connections: set[Connection] = set()
        self._routes: dict[SubKey, set[Connection]] = {}
        self._by_symbol: dict[str, set[SubKey]] = {}

    def add(self, ws: ServerConnection) -> Connection:
        """Register a new client connection."""
        conn = Connection(ws, self.faults)
        self.connections.add(conn)
        return conn

    def remove(self, conn: Connection) -> None:
        """Forget a connection and all its subscriptions (idempotent)."""
        self.connections.discard(conn)
        self.unsubscribe(conn, list(conn.subs))

    def subscribe(self, conn: Connection, key: SubKey) -> None:
        """Add one subscription of a connection."""
        conn.subs.add(key)
        route = conn.route(key)
        members = self._routes.get(route)
        if members is None:
            members = self._routes[route] = set()
            if key[0] not in PRIVATE_CHANNELS:
                self._by_symbol.setdefault(_index(key), set()).add(route)
        members.add(conn)

    def unsubscribe(self, conn: Connection, keys: Iterable[SubKey]) -> None:
        """Remove subscriptions of a connection."""
        for key in keys:
            conn.subs.discard(key)
            route = conn.route(key)
            members = self._routes.get(route)
            if members is None:
                continue
            members.discard(conn)
            if members:
                continue
            del self._routes[route]
            if key[0] in PRIVATE_CHANNELS:
                continue
            routes = self._by_symbol.get(_index(key))
            if routes is not None:
                routes.discard(route)
                if not routes:
                    del self._by_symbol[_index(key)]

    def routes_for(self, symbol: str) -> set[SubKey] | None:
        """Public routes naming `symbol` (or ALL_SYMBOLS) that have subscribers."""
        return self._by_symbol.get(symbol)

    def has(self, route: SubKey) -> bool:
        """True when someone is subscribed to `route`."""
        return route in self._routes

    def publish(self, route: SubKey, frame: str) -> None:
        """Send one encoded push to every subscriber of `route`."""
        members = self._routes.get(route)
        if not members:
            return
        if self.faults.stalled_until and self.faults.stall_remaining() > 0:
            return  # a frozen exchange loses what it would have pushed
        for conn in tuple(members):
            self.deliver(conn, route, frame)

    def deliver(self, conn: Connection, route: SubKey, frame: str) -> None:
        """Queue one push for one connection, applying malformed-frame faults."""
        if len(conn.outbox) >= MAX_BACKLOG:
            logger.warning("dropping connection %s: %d frames behind", conn.id, len(conn.outbox))
            self.remove(conn)
            conn.abort()
            return
        if conn.malformed_pending or (
            self.faults.malformed_rate and self.faults.rng.random() < self.faults.malformed_rate
        ):
            conn.malformed_pending = max(0, conn.malformed_pending - 1)
            key = route[1:] if route[0].startswith("user:") else route
            frame = malformed(conn.malformed_sent, key)
            conn.malformed_sent += 1
        conn.enqueue(frame)

    async def wait_for_slow_clients(self) -> None:
        """Hold the producer while some client is far behind; drop it if it stays behind."""
        lagging = [c for c in self.connections if len(c.outbox) > HIGH_WATER]
        if not lagging:
            return
        try:
            async with asyncio.timeout(SLOW_CLIENT_GRACE):
                for conn in lagging:
                    await conn.wait_drained()
        except TimeoutError:
            for conn in lagging:
                if len(conn.outbox) > LOW_WATER:
                    logger.warning("dropping connection %s: not reading fast enough", conn.id)
                    self.remove(conn)
                    conn.abort()


def _index(key: SubKey) -> str:
    return ALL_SYMBOLS if key[0] == "tickers" else key[1]
