"""Users and their API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Update, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from alerts.db.models import ApiKey, Delivery, Event, User, utcnow
from alerts.db.queue.claims import MUTE, QUIET
from alerts.security import hash_api_key, key_hint, new_api_key
from alerts.services.errors import Conflict, NotFound
from alerts.services.schemas import (
    ApiKeyCreated,
    ApiKeyPublic,
    QuietHoursWindow,
    UserCreate,
    UserCreated,
    UserPublic,
    UserSettingsUpdate,
    UserUpdate,
)
from alerts.services.telegram_chats import START, link_chat


def _public(user: User) -> UserPublic:
    quiet = None
    if user.quiet_start and user.quiet_end:  # shown as stored, not validated again
        quiet = QuietHoursWindow.model_construct(start=user.quiet_start, end=user.quiet_end)
    return UserPublic(
        id=user.id or 0,
        name=user.name,
        telegram_user_id=user.telegram_user_id,
        timezone=user.timezone,
        quiet_hours=quiet,
        created_at=user.created_at,
    )


def _telegram_taken(telegram_user_id: int) -> Conflict:
    return Conflict(f"another user already has telegram_user_id {telegram_user_id}")


def create_user(session: Session, data: UserCreate) -> UserCreated:
    """A new user with a first API key, which the result shows once."""
    user = User(name=data.name, telegram_user_id=data.telegram_user_id)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise _telegram_taken(data.telegram_user_id or 0) from None
    assert user.id is not None
    key = _add_key(session, user.id, "default")
    session.commit()
    return UserCreated(**_public(user).model_dump(), api_key=key[1])


def get_user(session: Session, user_id: int) -> User:
    """The user, or NotFound."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user", user_id)
    return user


def read_user(session: Session, user_id: int) -> UserPublic:
    """One user as shown by the API."""
    return _public(get_user(session, user_id))


def list_users(session: Session, *, after: int | None, limit: int) -> list[UserPublic]:
    """Users by id, one page at a time."""
    stmt = select(User).order_by(col(User.id)).limit(limit)
    if after is not None:
        stmt = stmt.where(col(User.id) > after)
    return [_public(u) for u in session.exec(stmt)]


def update_user(session: Session, user_id: int, data: UserUpdate, *, now: datetime) -> UserPublic:
    """Change a user's name, Telegram id, time zone or quiet hours."""
    user = get_user(session, user_id)
    if data.name is not None:
        user.name = data.name
    if "telegram_user_id" in data.model_fields_set:
        user.telegram_user_id = data.telegram_user_id
    _apply_settings(session, user, data, now=now)
    session.add(user)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise _telegram_taken(data.telegram_user_id or 0) from None
    return _public(user)


def update_settings(
    session: Session, user_id: int, data: UserSettingsUpdate, *, now: datetime
) -> UserPublic:
    """Change the user's own settings: time zone and quiet hours."""
    user = get_user(session, user_id)
    _apply_settings(session, user, data, now=now)
    session.add(user)
    session.commit()
    return _public(user)


def _apply_settings(
    session: Session, user: User, data: UserSettingsUpdate, *, now: datetime
) -> None:
    """Set what `data` sets of the time zone and quiet hours; when they change, what quiet
    hours held is due at once, to be held again (by the new window) or sent as its summary."""
    before = (user.timezone, user.quiet_start, user.quiet_end)
    if "timezone" in data.model_fields_set:
        user.timezone = data.timezone
    if "quiet_hours" in data.model_fields_set:
        quiet = data.quiet_hours
        user.quiet_start, user.quiet_end = (quiet.start, quiet.end) if quiet else (None, None)
    if (user.timezone, user.quiet_start, user.quiet_end) != before:
        session.exec(_release(user.id or 0, QUIET, now))


def _release(user_id: int, reason: str, now: datetime) -> Update:
    """Make the user's deliveries held for `reason` due at `now`."""
    if reason == QUIET:
        why = col(Delivery.hold_reason) == QUIET
    else:  # a mute's, and those held before reasons were recorded
        why = or_(col(Delivery.hold_reason).is_(None), col(Delivery.hold_reason) != QUIET)
    return (
        update(Delivery)
        .where(
            col(Delivery.held),
            col(Delivery.status) == "pending",
            why,
            col(Delivery.event_id).in_(select(Event.id).where(Event.user_id == user_id)),
        )
        .values(next_attempt_at=now)
    )


def delete_user(session: Session, user_id: int) -> None:
    """Remove a user and everything they own."""
    user = get_user(session, user_id)
    session.delete(user)
    session.commit()


class KeyCache:
    """Recently seen API keys (by hash) and their users, so most requests skip the lookup.

    A key revoked in another process keeps working here for at most `ttl` seconds.
    """

    def __init__(self, ttl: float = 10.0, max_size: int = 10_000) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._entries: dict[str, tuple[int, float]] = {}

    def get(self, key: str, now: float) -> int | None:
        """The cached user of `key`, if fresh."""
        entry = self._entries.get(hash_api_key(key))
        if entry is None or entry[1] < now:
            return None
        return entry[0]

    def put(self, key: str, user_id: int, now: float) -> None:
        """Remember `key` for `ttl` seconds."""
        if len(self._entries) >= self.max_size:
            self._entries.clear()
        self._entries[hash_api_key(key)] = (user_id, now + self.ttl)

    def clear(self) -> None:
        """Forget every key (after a revocation in this process)."""
        self._entries.clear()


def user_for_key(session: Session, key: str) -> int | None:
    """The id of the user owning `key`, if any."""
    return session.exec(select(ApiKey.user_id).where(ApiKey.key_hash == hash_api_key(key))).first()


def _add_key(session: Session, user_id: int, name: str) -> tuple[ApiKey, str]:
    key = new_api_key()
    row = ApiKey(user_id=user_id, name=name, hint=key_hint(key), key_hash=hash_api_key(key))
    session.add(row)
    session.flush()
    return row, key


def create_key(session: Session, user_id: int, name: str) -> ApiKeyCreated:
    """Another API key for the user, shown once."""
    get_user(session, user_id)
    row, key = _add_key(session, user_id, name)
    session.commit()
    return ApiKeyCreated(
        **ApiKeyPublic.model_validate(row, from_attributes=True).model_dump(), api_key=key
    )


def list_keys(session: Session, user_id: int) -> list[ApiKeyPublic]:
    """The user's keys, by hint only."""
    get_user(session, user_id)
    rows = session.exec(select(ApiKey).where(ApiKey.user_id == user_id).order_by(col(ApiKey.id)))
    return [ApiKeyPublic.model_validate(r, from_attributes=True) for r in rows]


def delete_key(session: Session, user_id: int, key_id: int) -> None:
    """Revoke one of the user's keys."""
    row = session.get(ApiKey, key_id)
    if row is None or row.user_id != user_id:
        raise NotFound("API key", key_id)
    session.delete(row)
    session.commit()


def register_telegram_user(
    session: Session, *, telegram_user_id: int, name: str, private_chat: bool = False
) -> tuple[int, bool]:
    """The user with this Telegram id, made if new (`True` then); with `private_chat`, their
    private chat with the bot (its id is theirs) is linked as one of their destinations,
    enabled again if it had been disabled."""
    user_id = session.exec(select(User.id).where(User.telegram_user_id == telegram_user_id)).first()
    created = user_id is None
    if user_id is None:
        user = User(name=(name.strip() or f"telegram {telegram_user_id}")[:100])
        user.telegram_user_id = telegram_user_id
        session.add(user)
        try:
            session.flush()
        except IntegrityError:  # registered at the same moment by another update
            session.rollback()
            return register_telegram_user(
                session, telegram_user_id=telegram_user_id, name=name, private_chat=private_chat
            )
        assert user.id is not None
        user_id = user.id
    if private_chat:
        link_chat(session, user_id, telegram_user_id, name="Telegram", proof=START, now=utcnow())
    session.commit()
    return user_id, created


def mute_user(session: Session, user_id: int, until: datetime) -> None:
    """Hold every delivery of the user's until `until`; they then go out as one summary."""
    user = get_user(session, user_id)
    user.muted_until = until
    session.add(user)
    session.commit()


def unmute_user(session: Session, user_id: int, *, now: datetime) -> int:
    """End a mute now: what it held is due at once (what quiet hours hold stays held until
    they end). Returns how many deliveries it held."""
    user = get_user(session, user_id)
    user.muted_until = None
    session.add(user)
    count = session.exec(_release(user_id, MUTE, now)).rowcount
    session.commit()
    return int(count or 0)
