"""xRocket accounts: tokens verified against the exchange, stored encrypted, never shown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from alerts.db.models import Account, Rule, RuleChange, utcnow
from alerts.db.session import Database
from alerts.domain.events import OrderStatus
from alerts.feed.errors import AuthRejected, ExchangeError, InvalidToken, Unauthorized, UserBlocked
from alerts.feed.verify import ExchangeUnreachable
from alerts.security import SecretBox
from alerts.services.errors import (
    Conflict,
    ExchangeUnavailable,
    InvalidInput,
    LimitReached,
    NotConfigured,
    NotFound,
    TokenRejected,
)
from alerts.services.rule_schemas import BalanceCreate, OrderCreate, RuleCreate, Trigger
from alerts.services.rules import add_rule
from alerts.services.schemas import AccountCreate, AccountPublic, AccountUpdate

Verifier = Callable[[str], Awaitable[None]]
"""Checks a token with the exchange (see `alerts.feed.verify.verify_token`)."""

MAX_ACCOUNTS_PER_USER = 10
ACTIVE = "active"
REJECTED = "rejected"


def _public(row: Account) -> AccountPublic:
    return AccountPublic.model_validate(row, from_attributes=True)


async def _verify(verify: Verifier, token: str) -> None:
    try:
        await verify(token)
    except InvalidToken:
        raise TokenRejected(
            "token_invalid", "the exchange rejected this token: it is invalid, expired or revoked"
        ) from None
    except UserBlocked:
        raise TokenRejected(
            "user_blocked", "the exchange says the user of this token is blocked"
        ) from None
    except Unauthorized:
        raise TokenRejected(
            "token_unauthorized", "the exchange says this token lacks the permissions needed"
        ) from None
    except AuthRejected as exc:
        raise TokenRejected("token_rejected", f"the exchange refused this token: {exc}") from None
    except ExchangeError as exc:
        raise ExchangeUnavailable(f"the exchange could not check the token: {exc}") from None
    except ExchangeUnreachable as exc:
        raise ExchangeUnavailable(
            f"the xRocket exchange could not be reached to verify the token ({exc}); "
            "try again later"
        ) from None


# What "order notifications" report: every status but NEW (the user placed it themselves).
NOTIFIED_STATUSES = [s for s in OrderStatus if s is not OrderStatus.NEW]


def _notification_rule(row: Account, orders: bool) -> RuleCreate:
    assert row.id is not None
    if orders:
        return OrderCreate(
            kind="order",
            name=f"Orders on {row.name}"[:100],
            account_id=row.id,
            statuses=NOTIFIED_STATUSES,
            trigger=Trigger.EVERY,
            cooldown_seconds=0,
        )
    return BalanceCreate(
        kind="balance",
        name=f"Balances on {row.name}"[:100],
        account_id=row.id,
        trigger=Trigger.EVERY,
        cooldown_seconds=0,
    )


def _sync_notifications(session: Session, row: Account) -> None:
    """Make the account's order and balance notification rules follow its two switches:
    made on first use (again, if the user deleted one), enabled or disabled otherwise."""
    now = utcnow()
    for orders, wanted, attr in (
        (True, row.notify_orders, "orders_rule_id"),
        (False, row.notify_balances, "balances_rule_id"),
    ):
        rule_id = getattr(row, attr)
        rule = session.get(Rule, rule_id) if rule_id is not None else None
        if rule is None or rule.user_id != row.user_id:
            if wanted:
                made = add_rule(session, row.user_id, _notification_rule(row, orders), now=now)
                setattr(row, attr, made.id)
        elif rule.enabled != wanted:
            rule.enabled, rule.updated_at = wanted, now
            session.add(rule)
            session.add(RuleChange(rule_id=rule_id, changed_at=now))
    session.add(row)


def _require_box(box: SecretBox) -> None:
    if not box.available:
        raise NotConfigured(
            "this server cannot store exchange tokens: its operator must set ALERTS_SECRET_KEY"
        )


def _get(session: Session, user_id: int, account_id: int) -> Account:
    row = session.get(Account, account_id)
    if row is None or row.user_id != user_id:
        raise NotFound("account", account_id)
    return row


def _commit(session: Session, row: Account) -> None:
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"you already have an account named {row.name!r}") from None


def _check_room(session: Session, user_id: int) -> None:
    count = len(session.exec(select(Account.id).where(Account.user_id == user_id)).all())
    if count >= MAX_ACCOUNTS_PER_USER:
        raise LimitReached(
            f"you have {MAX_ACCOUNTS_PER_USER} linked accounts, the most a user may have; "
            "unlink one first"
        )


def _room_for_one(db: Database, user_id: int) -> None:
    with db.session() as session:
        _check_room(session, user_id)


def _insert(db: Database, user_id: int, data: AccountCreate, sealed: str) -> AccountPublic:
    with db.session() as session:
        _check_room(session, user_id)
        row = Account(
            user_id=user_id,
            name=data.name,
            token_sealed=sealed,
            notify_orders=data.notify_orders,
            notify_balances=data.notify_balances,
            verified_at=utcnow(),
        )
        _commit(session, row)
        _sync_notifications(session, row)
        session.commit()
        return _public(row)


async def link_account(
    db: Database, user_id: int, data: AccountCreate, *, box: SecretBox, verify: Verifier
) -> AccountPublic:
    """Verify the token with the exchange, then store it encrypted."""
    _require_box(box)
    token = data.token.get_secret_value().strip()
    if not token:
        raise InvalidInput("token", "the token is empty")
    await asyncio.to_thread(_room_for_one, db, user_id)  # before asking the exchange
    await _verify(verify, token)
    return await asyncio.to_thread(_insert, db, user_id, data, box.seal(token))


def _apply(
    db: Database, user_id: int, account_id: int, data: AccountUpdate, sealed: str | None
) -> AccountPublic:
    with db.session() as session:
        row = _get(session, user_id, account_id)
        if sealed is not None:
            row.token_sealed = sealed
            row.status, row.status_reason, row.verified_at = ACTIVE, None, utcnow()
        for field in ("name", "notify_orders", "notify_balances"):
            value = getattr(data, field)
            if value is not None:
                setattr(row, field, value)
        row.updated_at = utcnow()
        _sync_notifications(session, row)
        _commit(session, row)
        return _public(row)


async def update_account(
    db: Database,
    user_id: int,
    account_id: int,
    data: AccountUpdate,
    *,
    box: SecretBox,
    verify: Verifier,
) -> AccountPublic:
    """Rename, toggle notifications, or replace the token (verified first)."""
    await asyncio.to_thread(_read, db, user_id, account_id)  # 404 before asking the exchange
    sealed = None
    if data.token is not None:
        _require_box(box)
        token = data.token.get_secret_value().strip()
        await _verify(verify, token)
        sealed = box.seal(token)
    return await asyncio.to_thread(_apply, db, user_id, account_id, data, sealed)


def _read(db: Database, user_id: int, account_id: int) -> AccountPublic:
    with db.session() as session:
        return _public(_get(session, user_id, account_id))


def list_accounts(session: Session, user_id: int) -> list[AccountPublic]:
    """The user's accounts by id."""
    rows = session.exec(select(Account).where(Account.user_id == user_id).order_by(col(Account.id)))
    return [_public(r) for r in rows]


def read_account(session: Session, user_id: int, account_id: int) -> AccountPublic:
    """One of the user's accounts."""
    return _public(_get(session, user_id, account_id))


def delete_account(session: Session, user_id: int, account_id: int) -> None:
    """Unlink an account that no rule of the user's own uses (its notification rules go)."""
    row = _get(session, user_id, account_id)
    own = {i for i in (row.orders_rule_id, row.balances_rule_id) if i is not None}
    used = session.exec(
        select(Rule.id)
        .where(Rule.account_id == account_id, col(Rule.id).not_in(own))
        .order_by(col(Rule.id))
        .limit(5)
    ).all()
    if used:
        ids = ", ".join(str(i) for i in used)
        raise Conflict(f"account {account_id} is used by rules ({ids}); delete them first")
    for rule_id in own:
        session.add(RuleChange(rule_id=rule_id, changed_at=utcnow()))
    session.delete(row)  # the rules follow by their foreign key's cascade
    session.commit()
