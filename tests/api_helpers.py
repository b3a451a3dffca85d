"""Helpers for API tests: an app on a migrated database, users, and a simulator for tokens."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from alerts.db.migrate import upgrade
from alerts.db.session import Database
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
        "ALERTS_ADMIN_TOKEN": ADMIN_TOKEN,
        "ALERTS_SECRET_KEY": SECRET_KEY,
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

    def create(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        """POST and expect 201."""
        r = self.client.post(path, json=body, headers=headers)
        assert r.status_code == 201, r.text
        result: dict[str, Any] = r.json()
        return result


def open_api(database_url: str, exchange_url: str, **overrides: Any) -> Iterator[Api]:
    """Migrate the database, build the app, and yield a client for it."""
    upgrade(database_url)
    db = Database(database_url)
    app = create_app(make_settings(database_url, exchange_url, **overrides), db=db)
    with TestClient(app) as client:
        yield Api(client=client, db=db)
    db.dispose()
