"""Rules as the API and the bot show them: a stored rule with its destinations and what the
engine found about its symbol; read one, list a page, count a user's rules."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, func, select

from alerts.db.models import Rule, RuleDestination, RuleFallback, SymbolStatus
from alerts.db.outbox import rule_destination_ids
from alerts.domain.rules import RuleKind
from alerts.services.errors import NotFound
from alerts.services.rule_schemas import RulePage, RulePublic, rule_public_adapter

_STATE = (
    "id",
    "name",
    "trigger",
    "cooldown_seconds",
    "expires_at",
    "message",
    "enabled",
    "urgent",
    "snoozed_until",
    "fire_count",
    "last_fired_at",
    "created_at",
    "updated_at",
)


_STATUSES = SymbolStatus.metadata.tables["symbol_status"]
_STATUS_OF = sa_select(_STATUSES.c.symbol, _STATUSES.c.status).where(
    _STATUSES.c.symbol.in_(bindparam("symbols", expanding=True))
)


def symbol_statuses(session: Session, symbols: Iterable[str | None]) -> dict[str, str]:
    """What the engine found about these symbols (e.g. "symbol not found on the exchange");
    symbols that stream fine are not in it."""
    wanted = sorted({s for s in symbols if s})
    if not wanted:
        return {}
    return {row.symbol: row.status for row in session.execute(_STATUS_OF, {"symbols": wanted})}


def public_rule(
    row: Rule, destination_ids: list[int], status: str | None, *, fallbacks: list[int]
) -> RulePublic:
    """A stored rule as the API shows it."""
    return public_rule_from(
        {"params": row.params, "kind": row.kind, **{f: getattr(row, f) for f in _STATE}},
        destination_ids,
        status,
        fallbacks=fallbacks,
    )


def public_rule_from(
    values: dict[str, Any], destination_ids: list[int], status: str | None, *, fallbacks: list[int]
) -> RulePublic:
    """A rule as the API shows it, from the column values it was (or is being) stored with."""
    return rule_public_adapter.validate_python(
        {
            **values["params"],
            "kind": values["kind"],
            "destination_ids": destination_ids,
            "fallback_destination_ids": fallbacks,
            "status": status,
            **{f: values.get(f) for f in _STATE},
        }
    )


_STATUS_OF_ONE = sa_select(_STATUSES.c.status).where(_STATUSES.c.symbol == bindparam("symbol"))


def symbol_status(session: Session, symbol: str | None) -> str | None:
    """What the engine found about one symbol, or None."""
    if not symbol:
        return None
    status: str | None = session.execute(_STATUS_OF_ONE, {"symbol": symbol}).scalar()
    return status


_RULES = Rule.metadata.tables["rules"]
# Built once: it runs before every rule is created, and the ORM's select costs ~8x more.
_COUNT = sa_select(func.count()).select_from(_RULES).where(_RULES.c.user_id == bindparam("user_id"))


def count_rules(session: Session, user_id: int) -> int:
    """How many rules the user has."""
    return int(session.execute(_COUNT, {"user_id": user_id}).scalar_one())


def owned_rule(session: Session, user_id: int, rule_id: int) -> Rule:
    """The user's rule row; NotFound if there is none (or it is another user's)."""
    row = session.get(Rule, rule_id)
    if row is None or row.user_id != user_id:
        raise NotFound("rule", rule_id)
    return row


def read_rule(session: Session, user_id: int, rule_id: int) -> RulePublic:
    """One of the user's rules."""
    row = owned_rule(session, user_id, rule_id)
    return public_rule(
        row,
        rule_destination_ids(session, rule_id),
        symbol_status(session, row.symbol),
        fallbacks=rule_fallbacks(session, [rule_id]).get(rule_id, []),
    )


def rule_fallbacks(session: Session, rule_ids: list[int]) -> dict[int, list[int]]:
    """Each rule's fallback destinations, in id order (a rule with none is left out)."""
    found: dict[int, list[int]] = {}
    if rule_ids:
        links = session.exec(
            select(RuleFallback)
            .where(col(RuleFallback.rule_id).in_(rule_ids))
            .order_by(col(RuleFallback.destination_id))
        )
        for link in links:
            found.setdefault(link.rule_id, []).append(link.destination_id)
    return found


def list_rules(
    session: Session,
    user_id: int,
    *,
    kind: RuleKind | None = None,
    symbol: str | None = None,
    enabled: bool | None = None,
    account_id: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> RulePage:
    """One page of the user's rules in id order, filtered; walks an index, never the table."""
    stmt = select(Rule).where(Rule.user_id == user_id)
    if kind is not None:
        stmt = stmt.where(Rule.kind == kind.value)
    if symbol is not None:
        stmt = stmt.where(Rule.symbol == symbol)
    if enabled is not None:
        stmt = stmt.where(Rule.enabled == enabled)
    if account_id is not None:
        stmt = stmt.where(Rule.account_id == account_id)
    if after is not None:
        stmt = stmt.where(col(Rule.id) > after)
    rows = list(session.exec(stmt.order_by(col(Rule.id)).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    targets: dict[int, list[int]] = {r.id: [] for r in rows if r.id is not None}
    if targets:
        links = session.exec(
            select(RuleDestination)
            .where(col(RuleDestination.rule_id).in_(list(targets)))
            .order_by(col(RuleDestination.destination_id))
        )
        for link in links:
            targets[link.rule_id].append(link.destination_id)
    statuses = symbol_statuses(session, (r.symbol for r in rows))
    fallbacks = rule_fallbacks(session, list(targets))
    items = [
        public_rule(
            r,
            targets.get(r.id or 0, []),
            statuses.get(r.symbol or ""),
            fallbacks=fallbacks.get(r.id or 0, []),
        )
        for r in rows
    ]
    next_cursor = str(rows[-1].id) if more and rows else None
    return RulePage(items=items, next_cursor=next_cursor)
