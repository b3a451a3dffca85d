"""Helpers for API tests: an app on a migrated database, users, and a simulator for tokens."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from alerts.db.migrate import upgrade
from alerts.db.models import utcnow
from alerts.db.session import Database
from alerts.runtime import serve_api
from alerts.services.telegram_chats import normalize_code, redeem_link_code
from alerts.settings import Settings
from alerts.simulator import Simulator, SimulatorConfig
from api.app import create_app

ADMIN_TOKEN = "admin-token-for-tests"
SECRET_KEY = Fernet.generate_key().decode()
GOOD_TOKEN = "xrocket-token-SECRET-alpha-1234567890"
OTHER_TOKEN = "xrocket-token-SECRET-bravo-0987654321"
BLOCKED_TOKEN = "xrocket-token-SECRET-blocked-5555"


class BackgroundExchange:
    """The simulator on its own event loop in a thread, so synchronous tests can use it."""

    def __init__(self) -> None:
        config = SimulatorConfig(
            tokens={GOOD_TOKEN: 101, OTHER_TOKEN: 102},
            blocked_tokens=frozenset({BLOCKED_TOKEN}),
            tick_interval=3600,
        )
        self.simulator = Simulator(config)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> BackgroundExchange:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.simulator.start(), self._loop).result(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.simulator.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def url(self) -> str:
        """The simulator's WebSocket URL."""
        return self.simulator.url


def make_settings(database_url: str, exchange_url: str, **overrides: Any) -> Settings:
    """Settings for a test app: admin token, secret key, the simulator as exchange."""
    values: dict[str, Any] = {
        "DATABASE_URL": database_url,
        "XROCKET_WS_URL": exchange_url,
        # The simulator serves the REST API on its WebSocket's port.
        "XROCKET_API_URL": exchange_url.replace("ws://", "http://", 1).rstrip("/"),
        "ALERTS_ADMIN_TOKEN": ADMIN_TOKEN,
        "ALERTS_SECRET_KEY": SECRET_KEY,
        # Tests make many requests with one key; the limit has tests of its own.
        "ALERTS_API_REQUESTS_PER_MINUTE": 1_000_000,
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Api:
    """A test client with shortcuts for the admin and for users."""

    client: TestClient
    db: Database
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def admin(self) -> dict[str, str]:
        """Headers carrying the admin token."""
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def user(self, name: str, telegram_user_id: int | None = None) -> dict[str, str]:
        """Create a user (once per name) and return headers with their API key."""
        if name not in self.keys:
            body: dict[str, Any] = {"name": name}
            if telegram_user_id is not None:
                body["telegram_user_id"] = telegram_user_id
            r = self.client.post("/v1/users", json=body, headers=self.admin)
            assert r.status_code == 201, r.text
            self.keys[name] = r.json()["api_key"]
        return {"Authorization": f"Bearer {self.keys[name]}"}

    def link_chat(self, headers: dict[str, str], chat_id: int) -> dict[str, Any]:
        """Link a chat as `/link CODE` sent there does: a code from the API, used in the
        chat; the destination it made."""
        r = self.client.post("/v1/destinations/telegram-links", headers=headers)
        assert r.status_code == 201, r.text
        code = normalize_code(r.json()["code"])
        assert code is not None
        with self.db.session() as session:
            linked = redeem_link_code(
                session, code, chat_id=chat_id, name=f"chat {chat_id}", now=utcnow()
            )
        assert linked is not None
        r = self.client.get(f"/v1/destinations/{linked.destination_id}", headers=headers)
        result: dict[str, Any] = r.json()
        return result

    def create(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """POST and expect 201."""
        r = self.client.post(path, json=body, headers=headers)
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result


@contextlib.asynccontextmanager
async def api_server(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The REST API served over real HTTP (uvicorn on a free port) in this event loop; a
    client for it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    task = asyncio.create_task(serve_api(settings, db, "127.0.0.1", port))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            for _ in range(500):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.01)
            yield client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def open_api(database_url: str, exchange_url: str, **overrides: Any) -> Iterator[Api]:
    """Migrate the database, build the app, and yield a client for it."""
    upgrade(database_url)
    db = Database(database_url)
    app = create_app(make_settings(database_url, exchange_url, **overrides), db=db)
    with TestClient(app) as client:
        yield Api(client=client, db=db)
    db.dispose()
