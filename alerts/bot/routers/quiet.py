"""/quiet 23:00-07:30 [TIME ZONE], /quiet off and /quiet: quiet hours, every day, in which
alerts of non-urgent rules are held and then sent as one summary."""

from __future__ import annotations

import re
from datetime import datetime

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message

from alerts.bot.context import BotServices, esc
from alerts.bot.parse import BadInput
from alerts.domain.quiet_hours import (
    InvalidQuietHours,
    format_clock,
    parse_clock,
    timezone_name,
    window,
)
from alerts.services.schemas import QuietHoursWindow, UserPublic, UserSettingsUpdate
from alerts.services.users import read_user, update_settings

EXAMPLE = "/quiet 23:00-07:30, or with your time zone: /quiet 23:00-07:30 Europe/Berlin"
# "23:00-07:30" (a hyphen, en or em dash: what phones type), then perhaps a time zone.
_WINDOW = re.compile(r"(\S+?)\s*[-\u2013\u2014]\s*(\S+)(?:\s+(\S+))?")


def parse_quiet(args: str) -> UserSettingsUpdate:
    """ "23:00-07:30", optionally followed by an IANA time zone name."""
    match = _WINDOW.fullmatch(args.strip())
    if match is None:
        raise BadInput(f"give the hours as start-end. For example: {EXAMPLE}")
    try:
        start, end = parse_clock(match.group(1)), parse_clock(match.group(2))
        zone = timezone_name(match.group(3)) if match.group(3) else None
    except InvalidQuietHours as exc:
        raise BadInput(str(exc)) from None
    if start == end:
        raise BadInput("the start and the end are the same time; /quiet off turns quiet hours off")
    hours = QuietHoursWindow(start=format_clock(start), end=format_clock(end))
    if zone is None:
        return UserSettingsUpdate(quiet_hours=hours)
    return UserSettingsUpdate(quiet_hours=hours, timezone=zone)


def describe(user: UserPublic, now: datetime) -> str:
    """The user's quiet hours in a sentence, and whether they are on now."""
    hours = user.quiet_hours
    if hours is None:
        return f"No quiet hours. Set them with {EXAMPLE}"
    text = f"🌙 Quiet hours: {hours.start} to {hours.end} ({esc(user.timezone)})."
    try:
        current = window(user.timezone, hours.start, hours.end)
    except InvalidQuietHours:
        return text
    ends = current.until(now)
    if ends is not None:
        text += f" Quiet now, until {ends.astimezone(current.zone):%H:%M}."
    return (
        f"{text} Alerts that fire then, except from urgent rules, come as one summary when "
        "they end. /quiet off turns them off."
    )


async def quiet(
    message: Message, command: CommandObject, services: BotServices, user_id: int
) -> None:
    """Set, end or show the user's quiet hours."""
    args = (command.args or "").strip()
    now = services.clock()
    if not args:
        user = await services.read(read_user, user_id)
        await message.answer(describe(user, now))
        return
    if args.lower() == "off":
        await services.write(
            update_settings, user_id, UserSettingsUpdate(quiet_hours=None), now=now
        )
        await message.answer("🔔 Quiet hours off. Alerts they held, if any, come now.")
        return
    try:
        settings = parse_quiet(args)
    except BadInput as exc:
        await message.answer(f"Sorry, {esc(exc)}")
        return
    user = await services.write(update_settings, user_id, settings, now=now)
    reply = describe(user, now)
    if user.timezone == "UTC" and "timezone" not in settings.model_fields_set:
        reply += "\nThe times are UTC; to use yours, add it: /quiet 23:00-07:30 Europe/Berlin"
    await message.answer(reply)


def router() -> Router:
    """This feature's handlers, on a new router (one per dispatcher)."""
    router = Router(name="quiet")
    router.message.register(quiet, Command("quiet"))
    return router
