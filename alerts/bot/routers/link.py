"""/link CODE: makes the chat it is sent in (a group or channel, by an administrator; or a
private chat) a destination of the user who made the code."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from alerts.bot.admins import NOT_ADMIN, chat_name, sent_by_admin
from alerts.bot.context import BotServices
from alerts.services.telegram_chats import normalize_code, redeem_link_code

USAGE = (
    "Send /link CODE here with a code made by POST /v1/destinations/telegram-links, "
    "e.g. /link K7QX-M2PD-R9TB. Codes work once, for 10 minutes."
)
UNKNOWN = "That code is unknown, already used or expired. Make a new one and send /link again."


async def link(message: Message, command: CommandObject, services: BotServices) -> None:
    """Use the code: this chat becomes a destination of the code's owner."""
    code = normalize_code(command.args)
    if code is None:
        await message.answer(USAGE)
        return
    if not await sent_by_admin(message):
        await message.answer(NOT_ADMIN)
        return
    linked = await services.write(
        redeem_link_code,
        code,
        chat_id=message.chat.id,
        name=chat_name(message.chat),
        now=services.clock(),
    )
    if linked is None:
        await message.answer(UNKNOWN)
        return
    await message.answer(
        f"✅ Linked. This chat is now destination <b>#{linked.destination_id}</b> of the user "
        "who made the code: their rules can send alerts here (name it in destination_ids)."
    )


def router() -> Router:
    """This feature's handlers, on a new router (one per dispatcher)."""
    router = Router(name="link")
    router.message.register(link, Command("link"))
    router.channel_post.register(link, Command("link"))
    return router
