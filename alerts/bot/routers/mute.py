"""/mute DURATION and /unmute: hold every delivery of the user's for a while."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from alerts.bot.context import BotServices, esc
from alerts.bot.parse import BadInput, parse_duration
from alerts.services.users import mute_user, unmute_user


async def mute(
    message: Message, command: CommandObject, services: BotServices, user_id: int
) -> None:
    """Hold alerts until the time given; they come as one summary when it ends."""
    try:
        length = parse_duration(command.args or "")
    except BadInput as exc:
        await message.answer(f"Sorry, {esc(exc)}. For example: /mute 1h")
        return
    until = services.clock() + length
    await services.write(mute_user, user_id, until)
    await message.answer(
        f"🔕 Muted until {until:%Y-%m-%d %H:%M} UTC. Alerts that fire meanwhile come as one "
        "summary then; /unmute ends it now."
    )


async def unmute(message: Message, services: BotServices, user_id: int) -> None:
    """End the mute; what it held is sent at once, as one summary."""
    held = await services.write(unmute_user, user_id, now=services.clock())
    # Those of non-urgent rules stay held during quiet hours, and come with their summary.
    tail = (
        f" {held} held alert(s) follow in one summary (after quiet hours, if on)." if held else ""
    )
    await message.answer(f"🔔 Unmuted.{tail}")


def router() -> Router:
    """This feature's handlers, on a new router (one per dispatcher)."""
    router = Router(name="mute")
    router.message.register(mute, Command("mute"))
    router.message.register(unmute, Command("unmute"))
    return router
