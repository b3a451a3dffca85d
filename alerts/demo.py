"""`alerts demo`: the whole service against an in-process exchange simulator, with example
rules of several kinds, printing each alert to the console as it fires (and sending it to
any Apprise URL given). SQLite in a temporary directory; nothing outlives the run."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import sys
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlmodel import col, select

from alerts.db.models import Event
from alerts.db.session import Database
from alerts.delivery.apprise_urls import UrlPolicy
from alerts.delivery.messages import default_text
from alerts.metrics import Metrics
from alerts.runtime import serve_api
from alerts.security import SecretBox
from alerts.services.accounts import link_account
from alerts.services.destination_schemas import AppriseDestinationCreate
from alerts.services.destinations import create_destination
from alerts.services.rule_schemas import rule_create_adapter
from alerts.services.rules import create_rule
from alerts.services.schemas import AccountCreate, UserCreate
from alerts.services.users import create_user
from alerts.settings import Settings
from alerts.simulator import Simulator, SimulatorConfig
from alerts.wiring import make_engine, make_worker

DEMO_TOKEN = "demo-token"  # noqa: S105 - the in-process simulator's public token
PRICES = {
    "BTC-USDT": Decimal("69990"),
    "ETH-USDT": Decimal("3500"),
    "TON-USDT": Decimal("5.5"),
}
# Chosen so that the simulator's random walk (0.1 % a tick, two ticks a second) trips several
# of them within seconds; `every` with a cooldown keeps them coming without a flood.
EXAMPLE_RULES: list[dict[str, Any]] = [
    {"kind": "price_cross", "symbol": "BTC-USDT", "level": "70000", "direction": "any"},
    {"kind": "price_range", "symbol": "ETH-USDT", "low": "3490", "high": "3510", "on": "exit"},
    {"kind": "percent_change", "symbol": "TON-USDT", "percent": "0.3", "window_seconds": 60},
    {"kind": "large_trade", "symbol": "BTC-USDT", "min_notional": "650"},
    {"kind": "spread", "symbol": "ETH-USDT", "percent": "0.02"},
    {"kind": "candle_close", "symbol": "BTC-USDT", "interval": "1min", "level": "70000",
     "direction": "above"},
    {"kind": "order", "account_id": 0, "statuses": ["FILLED", "CANCELED"]},
    {"kind": "balance", "account_id": 0, "currency": "USDT", "condition": "change"},
]  # fmt: skip
_BANNER = """\
xRocket alerts demo: the whole service against an in-process exchange simulator.
  exchange   {exchange}
  database   {database} (temporary)
  REST API   {api}  (interactive docs: {api}/docs)
  API key    {key}  (the demo user's: try curl -H "Authorization: Bearer {key}" {api}/v1/rules)
Example rules:
{rules}
Alerts print below as they fire{apprise}. Ctrl-C stops.
"""


def _quiet() -> None:
    # The console is for alerts: only problems are worth a log line.
    for name in ("alembic", "alerts.simulator", "alerts.simulator.ws", "alerts", "uvicorn"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with contextlib.suppress(OSError), socket.create_server(("127.0.0.1", port)) as sock:
            return int(sock.getsockname()[1])
    raise OSError("no free port")


async def _setup(db: Database, apprise: list[str], settings: Settings) -> tuple[str, list[str]]:
    """The demo user, the simulator's account linked, destinations for the Apprise URLs and
    the example rules: the user's API key and a line per rule."""
    assert settings.alerts_secret_key is not None
    box = SecretBox(settings.alerts_secret_key.get_secret_value())

    def user_and_destinations() -> tuple[int, str, list[int]]:
        with db.session() as session:
            user = create_user(session, UserCreate(name="demo"))
            targets = [
                create_destination(
                    session,
                    user.id,
                    AppriseDestinationCreate(kind="apprise", name=f"apprise {i + 1}", url=url),
                    box=box,
                    policy=UrlPolicy(schemes=None, allow_private=True),
                ).id
                for i, url in enumerate(apprise)
            ]
            return user.id, user.api_key, targets

    async def accept(_token: str) -> None:
        return None  # the in-process simulator knows the demo token

    user_id, key, targets = await asyncio.to_thread(user_and_destinations)
    account = await link_account(
        db,
        user_id,
        # Its own notification rules stay off: the examples below cover orders and balances.
        AccountCreate(
            name="demo", token=SecretStr(DEMO_TOKEN), notify_orders=False, notify_balances=False
        ),
        box=box,
        verify=accept,
    )

    def rules() -> list[str]:
        lines, now = [], datetime.now(UTC)
        with db.session() as session:
            for body in EXAMPLE_RULES:
                fields = {**body, "trigger": "every", "cooldown_seconds": 10}
                fields["destination_ids"] = targets
                if "account_id" in fields:
                    fields["account_id"] = account.id
                data = rule_create_adapter.validate_python(fields)
                rule = create_rule(session, user_id, data, now=now)
                lines.append(f"  #{rule.id:<3} {rule.kind:<15} {rule.name}")
        return lines

    return key, await asyncio.to_thread(rules)


async def _print_alerts(db: Database, out: TextIO) -> None:
    """Print every event the engine records, as it is recorded."""
    last = 0
    while True:
        with db.session() as session:
            events = list(
                session.exec(select(Event).where(col(Event.id) > last).order_by(col(Event.id)))
            )
        for event in events:
            last = event.id or last
            values = {k: str(v) for k, v in event.values.items() if v is not None}
            values.setdefault("rule", event.rule_name)
            when = event.fired_at.strftime("%H:%M:%S")
            text = default_text(event.kind, values).replace("\n", " · ")
            print(f"{when} ALERT #{event.rule_id} {event.rule_name}: {text}", file=out, flush=True)
        await asyncio.sleep(0.2)


async def _listening(port: int, server: asyncio.Task[None]) -> None:
    """Wait until 127.0.0.1:`port` accepts connections (or `server` has stopped: its error
    is raised)."""
    while not server.done():
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    await server


async def run_demo(
    seconds: float | None = None,
    *,
    port: int = 8000,
    apprise: list[str] | None = None,
    out: TextIO = sys.stdout,
) -> None:
    """Run the demo for `seconds`, or until cancelled (Ctrl-C)."""
    _quiet()
    from alerts.db.migrate import upgrade  # after _quiet: importing Alembic logs its plug-ins

    config = SimulatorConfig(
        tick_interval=0.5,
        tokens={DEMO_TOKEN: 1},
        order_activity_interval=2.0,
        initial_prices=PRICES,
    )
    with tempfile.TemporaryDirectory(prefix="alerts-demo-") as tmp:
        path = Path(tmp) / "demo.db"
        async with Simulator(config) as sim:
            settings = Settings(
                DATABASE_URL=f"sqlite:///{path}",
                XROCKET_WS_URL=sim.url,
                XROCKET_API_URL=sim.api_url,
                ALERTS_ADMIN_TOKEN=secrets.token_urlsafe(24),
                ALERTS_SECRET_KEY=Fernet.generate_key().decode(),
                TELEGRAM_BOT_TOKEN="",
                # Its only user is the person running it: their --apprise URLs may be local.
                ALERTS_ALLOW_PRIVATE_TARGETS=True,
            )
            upgrade(settings.database_url)
            db = Database(settings.database_url)
            key, rules = await _setup(db, apprise or [], settings)
            api_port = _free_port(port)
            api = f"http://127.0.0.1:{api_port}"
            banner = _BANNER.format(
                exchange=f"{sim.url} (and {sim.api_url} for its REST calls)",
                database=path,
                api=api,
                key=key,
                rules="\n".join(rules),
                apprise=f" and go to {len(apprise)} Apprise URL(s)" if apprise else "",
            )
            # The banner names the API: it is printed once the API answers.
            metrics = Metrics()  # one process: the API's /metrics shows the engine's too
            api_task = asyncio.create_task(
                serve_api(settings, db, "127.0.0.1", api_port, metrics=metrics)
            )
            await _listening(api_port, api_task)
            print(banner, file=out, flush=True)
            # Deliveries exist only for Apprise URLs: the demo user has no Telegram chat.
            worker = make_worker(settings, db, metrics=metrics) if apprise else None
            engine = make_engine(settings, db, metrics=metrics)
            await engine.start()
            tasks = [
                api_task,
                *([asyncio.create_task(worker.run())] if worker else []),
                asyncio.create_task(_print_alerts(db, out)),
            ]
            try:
                await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await engine.stop()
                if worker is not None:
                    await worker.stop()
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                if worker is not None:
                    await worker.apprise.close()
                db.dispose()
