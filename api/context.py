"""What the routes share: settings, database, secret box, the exchange check, the clock, the
process's metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from alerts import health
from alerts.db.session import Database
from alerts.delivery.apprise_urls import UrlPolicy, parse_schemes
from alerts.feed.verify import verify_token
from alerts.metrics import Metrics
from alerts.security import SecretBox
from alerts.services.accounts import Verifier
from alerts.services.users import KeyCache
from alerts.settings import Settings
from api.ratelimit import RequestLimiter

ReadinessCheck = Callable[[], tuple[bool, dict[str, object]]]
"""A named part of `/readyz`: (ready?, details for the operator)."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AppContext:
    """One per app; tests build their own through `create_app`'s arguments."""

    settings: Settings
    db: Database
    box: SecretBox
    verify: Verifier
    url_policy: UrlPolicy
    clock: Callable[[], datetime] = _now
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)
    keys: KeyCache = field(default_factory=KeyCache)
    limiter: RequestLimiter = field(default_factory=lambda: RequestLimiter(600))
    metrics: Metrics = field(default_factory=Metrics)

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        db: Database | None = None,
        verify: Verifier | None = None,
        clock: Callable[[], datetime] | None = None,
        metrics: Metrics | None = None,
    ) -> AppContext:
        """Everything derived from settings, with any part replaceable."""
        secret = settings.alerts_secret_key
        database = db or Database(settings.database_url)
        # What the engine and the bot report through their heartbeats (see alerts.health).
        readiness: dict[str, ReadinessCheck] = {
            "feeds": partial(health.feeds_ready, database, stale_after=settings.feed_stale_timeout),
            "recording": partial(
                health.recording_ready,
                database,
                unhealthy_after=settings.recording_unhealthy_after,
            ),
        }
        if settings.telegram_bot_token is not None:
            readiness["bot"] = partial(health.bot_ready, database)
        return cls(
            settings=settings,
            db=database,
            box=SecretBox(secret.get_secret_value() if secret else None),
            verify=verify or partial(verify_token, settings.xrocket_ws_url),
            url_policy=UrlPolicy(
                parse_schemes(settings.apprise_schemes), settings.allow_private_targets
            ),
            clock=clock or _now,
            readiness=readiness,
            limiter=RequestLimiter(settings.api_requests_per_minute),
            metrics=metrics or Metrics(),
        )

    @property
    def admin_token(self) -> str | None:
        """The admin bearer token, if the operator set one."""
        token = self.settings.alerts_admin_token
        return token.get_secret_value() if token else None
