"""Where a batch of the engine's firings goes, in one query: each rule with its named
destinations that its owner has enabled, or else its owner's private Telegram chat, as
`alerts.db.outbox.route` decides for any one firing (a test compares the two)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from alerts.db.bulk import one_of, per_dialect
from alerts.db.models import Destination, Rule, RuleDestination, User
from alerts.db.outbox import TELEGRAM, Target, dialect

_RULES = Rule.metadata.tables["rules"]
_DESTINATIONS = Destination.metadata.tables["destinations"]
_NAMED_TABLE = RuleDestination.metadata.tables["rule_destinations"]
_USERS = User.metadata.tables["users"]
_N = _NAMED_TABLE.c

_R = _RULES.c
_NAMED_D = _DESTINATIONS.alias("named")
_PRIVATE_D = _DESTINATIONS.alias("private")
_ROUTED = per_dialect(
    lambda dialect: (
        select(
            _R.id,
            _R.user_id,
            _R.name,
            _R.kind,
            _NAMED_D.c.id,
            _NAMED_D.c.kind,
            _NAMED_D.c.chat_id,
            _PRIVATE_D.c.id,
            _PRIVATE_D.c.kind,
            _PRIVATE_D.c.chat_id,
        )
        .select_from(_RULES)
        .outerjoin(_NAMED_TABLE, _N.rule_id == _R.id)
        .outerjoin(
            _NAMED_D,
            and_(
                _NAMED_D.c.id == _N.destination_id,
                _NAMED_D.c.enabled,
                _NAMED_D.c.user_id == _R.user_id,
            ),
        )
        .outerjoin(_USERS, and_(_USERS.c.id == _R.user_id, _N.rule_id.is_(None)))
        .outerjoin(
            _PRIVATE_D,
            and_(
                _PRIVATE_D.c.user_id == _R.user_id,
                _PRIVATE_D.c.enabled,
                _PRIVATE_D.c.kind == TELEGRAM,
                _PRIVATE_D.c.chat_id == _USERS.c.telegram_user_id,
            ),
        )
        .where(_R.enabled, one_of(_R.id, "ids", dialect))
    )
)


@dataclass(frozen=True, slots=True)
class RoutedRule:
    """An enabled rule and the destinations its firings go to, in id order."""

    id: int
    user_id: int
    name: str
    kind: str
    targets: list[Target]


def route_rules(session: Session, rule_ids: Collection[int]) -> dict[int, RoutedRule]:
    """The enabled rules among `rule_ids`, each with its targets as `route` gives them for
    its owner and named destinations, in one query however many (the engine's recorder)."""
    rules: dict[int, RoutedRule] = {}
    if not rule_ids:
        return rules
    params = {"ids": sorted(rule_ids)}
    for row in session.execute(_ROUTED[dialect(session)], params):
        rule = rules.get(row[0])
        if rule is None:
            rule = rules[row[0]] = RoutedRule(row[0], row[1], row[2], row[3], [])
        # A named destination (columns 4-6), or the owner's private chat (7-9), or neither.
        for d, d_kind, chat in (row[4:7], row[7:10]):
            if d is not None and all(t.id != d for t in rule.targets):
                rule.targets.append(Target(d, d_kind, chat))
    for rule in rules.values():
        rule.targets.sort(key=lambda t: t.id)
    return rules
