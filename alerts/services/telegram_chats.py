"""Which Telegram chats a user may send alerts to: only chats they proved theirs.

A proof is one of: the user's own private chat (its id is their `telegram_user_id`); a chat
where they sent /start (in a group, as an administrator); or a chat where `/link CODE` was
sent with a code the user made (`POST /v1/destinations/telegram-links`). The bot checks who
sent the command; this module records the proof and keeps every Telegram destination
within it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlmodel import Session, col, select

from alerts.db.models import Destination, TelegramChat, TelegramLinkCode, User
from alerts.services.destination_schemas import TelegramLinkCreated
from alerts.services.errors import Conflict, InvalidInput

LINK_CODE_TTL = timedelta(minutes=10)
MAX_OPEN_CODES = 5
# No 0/O, 1/I/L or U: a code may be read off one screen and typed on another.
_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
_CODE_LENGTH = 12  # 30**12: about 59 bits
START, LINK = "start", "link"


def not_proven(chat_id: int) -> InvalidInput:
    """The 422 for a chat the user has not proved theirs, saying how to prove it."""
    return InvalidInput(
        "chat_id",
        f"Telegram chat {chat_id} is not proven yours. To link it, create a code with "
        "POST /v1/destinations/telegram-links and send /link CODE in that chat (in a group or "
        "channel, as one of its administrators); it then becomes one of your destinations. "
        'Your own private chat with the bot is {"kind": "telegram"} with no chat_id.',
    )


def own_chat(session: Session, user_id: int) -> int:
    """The user's private chat with the bot, or InvalidInput if Telegram does not know them."""
    telegram_user_id = session.exec(select(User.telegram_user_id).where(User.id == user_id)).one()
    if telegram_user_id is None:
        raise InvalidInput(
            "chat_id",
            "your Telegram chat is not known yet: send /start to the bot, then try again "
            "(or give the chat_id of a chat you linked with /link)",
        )
    return telegram_user_id


def is_proven(session: Session, user_id: int, chat_id: int) -> bool:
    """Whether the user may send alerts to `chat_id`."""
    owner = session.exec(select(User.telegram_user_id).where(User.id == user_id)).first()
    if owner is not None and owner == chat_id:
        return True
    proof = session.get(TelegramChat, (user_id, chat_id))
    return proof is not None


def require_proven(session: Session, user_id: int, chat_id: int) -> None:
    """Raise the 422 that says how to link the chat unless the user proved it."""
    if not is_proven(session, user_id, chat_id):
        raise not_proven(chat_id)


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def normalize_code(text: str | None) -> str | None:
    """A code as typed ("k7qx-m2pd-r9tb", with or without dashes), or None if it is not one."""
    compact = "".join((text or "").split()).replace("-", "").upper()
    if len(compact) != _CODE_LENGTH or any(c not in _ALPHABET for c in compact):
        return None
    return compact


def new_link_code(session: Session, user_id: int, *, now: datetime) -> TelegramLinkCreated:
    """A single-use code that links the chat it is sent in (`/link CODE`), for 10 minutes."""
    session.exec(
        delete(TelegramLinkCode).where(
            col(TelegramLinkCode.user_id) == user_id, col(TelegramLinkCode.expires_at) <= now
        )
    )
    open_codes = session.exec(
        select(func.count())
        .select_from(TelegramLinkCode)
        .where(TelegramLinkCode.user_id == user_id)
    ).one()
    if open_codes >= MAX_OPEN_CODES:
        raise Conflict(
            f"you have {MAX_OPEN_CODES} unused link codes; use one, or wait until they expire "
            f"({int(LINK_CODE_TTL.total_seconds() // 60)} minutes after they were made)"
        )
    code = "".join(secrets.choice(_ALPHABET) for _ in range(_CODE_LENGTH))
    expires_at = now + LINK_CODE_TTL
    session.add(
        TelegramLinkCode(
            code_hash=_code_hash(code), user_id=user_id, expires_at=expires_at, created_at=now
        )
    )
    session.commit()
    shown = "-".join(code[i : i + 4] for i in range(0, _CODE_LENGTH, 4))
    return TelegramLinkCreated(code=shown, expires_at=expires_at)


@dataclass(frozen=True)
class Linked:
    """A chat made a destination: whose, and which destination."""

    user_id: int
    destination_id: int


def redeem_link_code(
    session: Session, code: str, *, chat_id: int, name: str, now: datetime
) -> Linked | None:
    """Use a code (once): the chat it was sent in becomes a destination of the code's owner.
    None when the code is unknown, used or expired."""
    key = _code_hash(code)
    row = session.get(TelegramLinkCode, key)
    if row is None or row.expires_at <= now:
        return None
    # Deleting it is what makes it single-use: of two /link with one code, one deletes it.
    used = session.exec(delete(TelegramLinkCode).where(col(TelegramLinkCode.code_hash) == key))
    if used.rowcount != 1:
        session.rollback()
        return None
    destination_id = link_chat(session, row.user_id, chat_id, name=name, proof=LINK, now=now)
    session.commit()
    return Linked(row.user_id, destination_id)


def link_chat(
    session: Session, user_id: int, chat_id: int, *, name: str, proof: str, now: datetime
) -> int:
    """Record the proof and make the chat an enabled destination of the user (the caller
    commits); the destination's id."""
    if not is_proven(session, user_id, chat_id):
        session.add(TelegramChat(user_id=user_id, chat_id=chat_id, proof=proof, proven_at=now))
    row = session.exec(
        select(Destination).where(Destination.user_id == user_id, Destination.chat_id == chat_id)
    ).first()
    if row is None:
        row = Destination(
            user_id=user_id, kind="telegram", name=name[:100], chat_id=chat_id, created_at=now
        )
    elif not row.enabled:  # proved (again), so it may write there again
        row.enabled, row.disabled_reason, row.updated_at = True, None, now
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id
