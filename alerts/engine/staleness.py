"""Feed staleness as an alert: a followed symbol with no push for `after` seconds goes stale,
and its users are told once; told again when pushes resume. Pure bookkeeping: the engine
feeds it pushes and asks it, now and then, what changed."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from alerts.db.session import Database
from alerts.engine.store import tell_followers

logger = logging.getLogger("alerts.engine")
STALE = "feed_stale"
RECOVERED = "feed_recovered"


@dataclass
class StalenessWatch:
    """When each followed symbol last had a push, and which ones are stale now."""

    after: float
    last: dict[str, float] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)

    def follow(self, symbol: str, now: float) -> None:
        """Start the clock for a symbol the engine subscribed to."""
        self.last.setdefault(symbol, now)

    def forget(self, symbol: str) -> None:
        """The engine unsubscribed: no more notices for it."""
        self.last.pop(symbol, None)
        self.stale.discard(symbol)

    def seen(self, symbol: str, now: float) -> None:
        """A push for `symbol` arrived (the hot path: one dict write)."""
        if symbol in self.last:
            self.last[symbol] = now

    def check(self, now: float) -> tuple[list[str], list[str]]:
        """Symbols that went stale since the last check, and those that recovered."""
        went, back = [], []
        for symbol, at in self.last.items():
            quiet = now - at >= self.after
            if quiet and symbol not in self.stale:
                self.stale.add(symbol)
                went.append(symbol)
            elif not quiet and symbol in self.stale:
                self.stale.discard(symbol)
                back.append(symbol)
        return sorted(went), sorted(back)


def notify(db: Database, symbol: str, kind: str, quiet_for: float, now: datetime) -> int:
    """Tell each user with an enabled rule on `symbol` (in their own chat); how many."""
    with db.writing() as session:
        told = tell_followers(
            session,
            symbol,
            kind=kind,
            rule_name=f"{symbol} feed",
            values={"symbol": symbol, "seconds": str(int(quiet_for))},
            now=now,
        )
        session.commit()
    logger.warning(
        "%s: %s, %d user(s) told", symbol, "no prices" if kind == STALE else "prices again", told
    )
    return told
