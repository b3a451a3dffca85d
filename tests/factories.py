"""Rows for tests that work below the REST API: a user, a rule, a destination, each added
and committed in one call, answering its id (tests through the API use `api_helpers`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from alerts.db.models import Destination, Rule, RuleDestination, RuleFallback, User
from alerts.db.session import Database

BTC_CROSS = {"symbol": "BTC-USDT", "level": "70000"}


def add_user(db: Database, name: str = "alice", **fields: Any) -> int:
    """A user (`telegram_user_id`, `timezone`, `quiet_start`... as given)."""
    with db.session() as session:
        user = User(name=name, **fields)
        session.add(user)
        session.commit()
        assert user.id is not None
        return user.id


def add_rule(
    db: Database,
    user_id: int,
    name: str = "BTC 70k",
    *,
    destinations: Sequence[int] = (),
    fallbacks: Sequence[int] = (),
    **fields: Any,
) -> int:
    """A price_cross rule on BTC-USDT at 70000 unless `fields` say otherwise, with its
    destinations and fallbacks."""
    fields.setdefault("kind", "price_cross")
    fields.setdefault("symbol", "BTC-USDT")
    fields.setdefault("params", dict(BTC_CROSS))
    with db.session() as session:
        rule = Rule(user_id=user_id, name=name, **fields)
        session.add(rule)
        session.flush()
        assert rule.id is not None
        session.add_all(RuleDestination(rule_id=rule.id, destination_id=d) for d in destinations)
        session.add_all(RuleFallback(rule_id=rule.id, destination_id=d) for d in fallbacks)
        session.commit()
        return rule.id


def add_destination(db: Database, user_id: int, kind: str, **fields: Any) -> int:
    """A destination of `kind` (`chat_id`, `url_sealed`, `secret_sealed`... as given)."""
    fields.setdefault("name", kind)
    with db.session() as session:
        row = Destination(user_id=user_id, kind=kind, **fields)
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id
