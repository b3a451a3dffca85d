"""Who may make a chat a destination: in a group, only its administrators (checked with
getChatMember); in a channel, anyone who can post there (only administrators can)."""

from __future__ import annotations

import logging

from aiogram.exceptions import AiogramError
from aiogram.types import Chat, Message

logger = logging.getLogger("alerts.bot")

NOT_ADMIN = (
    "Only an administrator of this chat can make it a destination. Ask one to send /start "
    "here (or /link with a code of yours)."
)
_ADMIN_STATUSES = ("creator", "administrator")


async def sent_by_admin(message: Message) -> bool:
    """Whether whoever sent `message` administers its chat (always, in a private chat)."""
    chat = message.chat
    if chat.type in ("private", "channel"):
        return True
    if message.sender_chat is not None:
        # An anonymous administrator posts as the group itself; anyone else posting as a
        # chat (a channel they own, an automatic forward) is not the group's administrator.
        return message.sender_chat.id == chat.id
    if message.from_user is None or message.bot is None:
        return False
    try:
        member = await message.bot.get_chat_member(chat.id, message.from_user.id)
    except AiogramError as exc:  # the Bot API's refusal, or an answer it could not read
        logger.info(
            "getChatMember failed in a group (%s); not treated as admin", type(exc).__name__
        )
        return False
    return member.status in _ADMIN_STATUSES


def chat_name(chat: Chat) -> str:
    """A destination's name for a chat: its title (printable, at most 100 characters)."""
    title = "".join(c for c in (chat.title or "") if c.isprintable()).strip()
    if not title:
        return f"Telegram chat {chat.id}"
    return f"Telegram: {title}"[:100]
