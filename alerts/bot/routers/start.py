"""/start and /help, and the answer to anything the bot does not understand."""

from __future__ import annotations

from datetime import datetime

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message
from sqlmodel import Session

from alerts.bot.admins import NOT_ADMIN, chat_name, sent_by_admin
from alerts.bot.context import BotServices, esc
from alerts.services.telegram_chats import START, link_chat
from alerts.services.users import register_telegram_user


def _link_group(session: Session, user_id: int, chat_id: int, *, name: str, now: datetime) -> int:
    destination_id = link_chat(session, user_id, chat_id, name=name, proof=START, now=now)
    session.commit()
    return destination_id


HELP = """<b>xRocket alerts</b>: messages here when the market or your account does what you asked.

<b>Alerts</b>
/alert BTC-USDT above 70000 (or below): when the price crosses that level
/alert TON-USDT change 5% 1h: when the price moves 5% within an hour
/alerts: your alerts, with buttons to pause, resume and delete
/delete 12: delete alert 12
/price BTC-USDT: the latest price the service has seen

<b>Quiet time</b>
/mute 1h: hold every alert until then (30m, 2h, 1d…); what fires meanwhile comes as one summary
/unmute: end it now
/quiet 23:00-07:30 Europe/Berlin: every night, hold alerts (not those of urgent rules) and \
send one summary when it ends; /quiet shows it, /quiet off ends it

<b>Groups and channels</b>
/start in a group (as an administrator): alerts of your rules can go there
/link CODE in a group or channel (as an administrator): makes it a destination of \
whoever made the code (POST /v1/destinations/telegram-links)

<b>Your xRocket account</b> (in this private chat only)
/connect TOKEN: link it with an API token; the message with the token is deleted at once
/orders on|off: order notifications (fills, cancels…)
/balances on|off: balance change notifications

Every alert message has buttons to snooze its rule for an hour or turn it off.
More kinds of rules (ranges, candles, large trades, spreads) are in the REST API."""


async def start(message: Message, services: BotServices, new_user: bool, user_id: int) -> None:
    """Register the user and link this chat as a destination (again, if it was disabled); in
    a group, only when an administrator sends it."""
    assert message.from_user is not None
    chat = message.chat
    if chat.type != "private":
        if not await sent_by_admin(message):
            await message.answer(NOT_ADMIN)
            return
        await services.write(
            _link_group, user_id, chat.id, name=chat_name(chat), now=services.clock()
        )
        await message.answer(
            f"This group (chat id <code>{chat.id}</code>) is now one of your destinations. "
            "Alerts from /alert go to your private chat with me; rules made over the REST API "
            "can name this group."
        )
        return
    _, created = await services.write(
        register_telegram_user,
        telegram_user_id=message.from_user.id,
        name=message.from_user.full_name,
        private_chat=True,
    )
    hello = "Welcome" if created or new_user else "Welcome back"
    await message.answer(f"{hello}, {esc(message.from_user.first_name)}!\n\n{HELP}")


async def help_(message: Message) -> None:
    """Every command, with examples."""
    await message.answer(HELP)


async def unknown(message: Message) -> None:
    """A command the bot does not have."""
    command = (message.text or "").split()[0][:32]
    await message.answer(f"I don't know {esc(command)}. /help lists what I can do.")


def router() -> Router:
    """This feature's handlers, on a new router (one per dispatcher)."""
    router = Router(name="start")
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    return router


async def stale_button(query: CallbackQuery) -> None:
    """A button whose data no handler understands (an old bot version's, or forged)."""
    await query.answer("That button is no longer valid.")


def fallback() -> Router:
    """Included last, after every feature's router: commands and buttons nobody handled."""
    router = Router(name="fallback")
    router.message.register(unknown, F.text.startswith("/"))
    router.callback_query.register(stale_button)
    return router
