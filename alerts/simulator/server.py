"""The simulated exchange: a WebSocket server speaking the xRocket protocol."""

from __future__ import annotations

import asyncio
import logging
import random
from types import TracebackType
from typing import Any, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from alerts.simulator.accounts import Accounts
from alerts.simulator.config import SimulatorConfig
from alerts.simulator.controls import SimulatorControls
from alerts.simulator.dispatch import Dispatcher, is_private
from alerts.simulator.hub import Connection, Faults, Hub
from alerts.simulator.market import Market, now_ms
from alerts.simulator.protocol import SubKey
from alerts.simulator.publisher import Publisher
from alerts.simulator.rest import RestApi, RestFaults

logger = logging.getLogger("alerts.simulator")
# websockets logs every frame at DEBUG, auth tokens included: never below INFO.
_wire_logger = logging.getLogger("alerts.simulator.ws")
_wire_logger.setLevel(logging.INFO)


class Simulator(SimulatorControls):
    """An xRocket-compatible exchange with market control and fault injection for tests
    (those controls are in `SimulatorControls`)."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        seed = self.config.seed
        self._rng = random.Random(None if seed is None else seed + 2)
        self._market = Market(self.config)
        self._accounts = Accounts(self.config.initial_balances)
        self._faults = Faults(self.config.malformed_rate, self._rng)
        self._hub = Hub(self._faults)
        self._publisher = Publisher(
            self._market, self._accounts, self._hub, self.config.orderbook_depth
        )
        self._server: Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._host = "127.0.0.1"
        self._port = 0
        self.close_on_accept = False
        self.connection_attempts = 0
        self._dispatcher = Dispatcher(
            self.config, self._market.states, self._hub, self._publisher, self._faults
        )
        #: (method, params) of every request received, in order.
        self.requests: list[tuple[str, dict[str, Any]]] = self._dispatcher.requests
        #: The REST API's fault switches (and the paths it was asked for).
        self.rest_faults = RestFaults()
        self._rest = RestApi(self.config, self._market, self._accounts, self.rest_faults, now_ms)

    # -- life cycle --------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on host:port (0 picks a free port) and start the market."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        self._server = await serve(
            self._handle,
            host,
            port,
            max_size=self.config.max_frame_bytes,
            # Deflate costs more CPU than it saves on a loopback test exchange.
            compression=None,
            close_timeout=2,
            logger=_wire_logger,
            process_request=self._rest,  # a plain HTTP GET is a REST request
        )
        self._host = host
        self._port = self._server.sockets[0].getsockname()[1]
        self._tasks.append(asyncio.create_task(self._run_market(), name="simulator-market"))
        if self.config.order_activity_interval is not None:
            task = asyncio.create_task(self._run_order_activity(), name="simulator-orders")
            self._tasks.append(task)
        logger.debug("simulator listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection and the server, and stop background tasks."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)
        self._tasks.clear()
        if self._server is not None:
            for conn in tuple(self._hub.connections):
                self._hub.remove(conn)
                conn.abort()
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """WebSocket URL of the running server."""
        return f"ws://{self._host}:{self._port}/"

    @property
    def api_url(self) -> str:
        """Base URL of the REST API (the same port: XROCKET_API_URL for the service)."""
        return f"http://{self._host}:{self._port}"

    @property
    def port(self) -> int:
        """Port the server listens on."""
        return self._port

    @property
    def pings_received(self) -> int:
        """Number of ping requests received."""
        return self._dispatcher.pings_received

    @property
    def open_connections(self) -> int:
        """Number of client connections currently open."""
        return len(self._hub.connections)

    def subscriptions(self) -> list[frozenset[SubKey]]:
        """Per open connection, its subscriptions as canonical keys."""
        return [frozenset(conn.subs) for conn in self._hub.connections]

    # -- connections -------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        self.connection_attempts += 1
        if self.close_on_accept:
            await ws.close(CloseCode.TRY_AGAIN_LATER, "not accepting connections")
            return
        conn = self._hub.add(ws)
        logger.debug("connection %s opened from %s", conn.id, ws.remote_address)
        writer = asyncio.create_task(conn.run_writer(), name=f"simulator-writer-{conn.id}")
        try:
            await self._read(conn)
        finally:
            self._hub.remove(conn)
            writer.cancel()
            await asyncio.wait([writer])
            logger.debug("connection %s closed", conn.id)

    async def _read(self, conn: Connection) -> None:
        idle = self.config.idle_timeout
        while True:
            try:
                async with asyncio.timeout(idle):
                    raw = await conn.ws.recv()
            except TimeoutError:
                logger.info("closing connection %s: idle for %.1f s", conn.id, idle)
                self._hub.remove(conn)
                await conn.ws.close(CloseCode.NORMAL_CLOSURE, "idle timeout")
                return
            except ConnectionClosed:
                return
            self._dispatcher.handle(conn, raw)

    # -- background tasks --------------------------------------------------------------------

    async def _run_market(self) -> None:
        interval = self.config.tick_interval
        while True:
            await asyncio.sleep(interval)
            try:
                self.tick()
            except (ArithmeticError, ValueError):
                # A bad scripted price must not stop the market for everyone else.
                logger.exception("market tick failed")
            await self._hub.wait_for_slow_clients()

    async def _run_order_activity(self) -> None:
        assert self.config.order_activity_interval is not None
        while True:
            await asyncio.sleep(self.config.order_activity_interval)
            users = {
                conn.user
                for conn in self._hub.connections
                if conn.user is not None and any(is_private(k) for k in conn.subs)
            }
            prices = {symbol: st.price for symbol, st in self._market.states.items()}
            for user in sorted(users):
                change = self._accounts.random_step(user, self._rng, prices, now_ms())
                self._publisher.order_changed(change)


async def serve_forever(config: SimulatorConfig, host: str, port: int) -> None:
    """Run a simulator on host:port until cancelled, then stop it cleanly."""
    simulator = Simulator(config)
    await simulator.start(host, port)
    logger.info(
        "xRocket simulator serving %d symbols at %s (REST API at %s)",
        len(config.symbols),
        simulator.url,
        simulator.api_url,
    )
    try:
        await asyncio.Event().wait()
    finally:
        await simulator.stop()
