"""The FastAPI app, built by `create_app(settings)`; nothing is created at import time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

from fastapi import FastAPI

import alerts
from alerts.db import queue
from alerts.db.session import Database
from alerts.metrics import Metrics
from alerts.services.accounts import Verifier
from alerts.settings import Settings
from api.context import AppContext
from api.errors import AUTH_RESPONSES, install_error_handlers
from api.limits import BodySizeLimit
from api.routes import accounts, destinations, events, health, market, rules, users

DESCRIPTION = """\
Alerts on the xRocket exchange: rules over prices, candles, trades, the order book, your orders
and balances, delivered to Telegram and anything Apprise reaches.

Authenticate with `Authorization: Bearer <key>`: the admin token (ALERTS_ADMIN_TOKEN) manages
users; a user's API key manages that user's destinations, accounts, rules and events.
"""


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    verify: Verifier | None = None,
    clock: Callable[[], datetime] | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """Build the API for `settings`, serving `metrics` (its own if none) on `/metrics`; tests
    may pass their own database, token check or clock."""
    context = AppContext.build(
        settings or Settings(), db=db, verify=verify, clock=clock, metrics=metrics
    )
    app = FastAPI(
        title="xRocket alerts",
        version=getattr(alerts, "__version__", "0"),
        description=DESCRIPTION,
    )
    app.state.context = context
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit)
    for module in (users, destinations, accounts, rules, events, market):
        app.include_router(module.router, prefix="/v1", responses=AUTH_RESPONSES)
    app.include_router(health.router)
    # The queue lives in the database: any API process can report its depth.
    context.metrics.watch_queue(partial(queue.depth, context.db))
    return app
