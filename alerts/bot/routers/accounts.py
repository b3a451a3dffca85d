"""/connect TOKEN (private chats only; the message is deleted at once), /orders, /balances."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from pydantic import SecretStr
from sqlmodel import Session

from alerts.bot.context import BotServices, esc
from alerts.bot.parse import BadInput, parse_switch
from alerts.services import accounts
from alerts.services.errors import ServiceError
from alerts.services.schemas import AccountCreate, AccountPublic, AccountUpdate

logger = logging.getLogger("alerts.bot")
ACCOUNT_NAME = "xRocket"


async def _delete(message: Message) -> bool:
    try:
        await message.delete()
    except TelegramAPIError as exc:  # e.g. no right to delete in a group
        logger.warning("could not delete a message holding a token: %s", type(exc).__name__)
        return False
    return True


def _named(session: Session, user_id: int, name: str) -> AccountPublic | None:
    return next((a for a in accounts.list_accounts(session, user_id) if a.name == name), None)


async def connect(
    message: Message, command: CommandObject, services: BotServices, user_id: int
) -> None:
    """Verify the token with the exchange and link (or re-link) the user's account."""
    token = (command.args or "").strip()
    deleted = await _delete(message) if token else True
    if message.chat.type != "private":
        warning = "" if deleted else " I could not delete it: delete it and revoke that token."
        await message.answer(
            "For your safety, /connect works only in a private chat with me. "
            f"Never post an API token in a group.{warning}"
        )
        return
    if not token:
        await message.answer(
            "Send /connect followed by your xRocket API token (the message is deleted at once)."
        )
        return
    try:
        existing = await services.read(_named, user_id, ACCOUNT_NAME)
        if existing is None:
            account = await accounts.link_account(
                services.db,
                user_id,
                AccountCreate(name=ACCOUNT_NAME, token=SecretStr(token)),
                box=services.box,
                verify=services.verify,
            )
        else:
            account = await accounts.update_account(
                services.db,
                user_id,
                existing.id,
                AccountUpdate(token=SecretStr(token)),
                box=services.box,
                verify=services.verify,
            )
    except ServiceError as exc:
        await message.answer(f"Not linked: {esc(exc.message)}")
        return
    await message.answer(
        f"✅ xRocket account linked (#{account.id}); I deleted your message with the token.\n"
        f"Order notifications: {'on' if account.notify_orders else 'off'} (/orders on|off)\n"
        f"Balance notifications: {'on' if account.notify_balances else 'off'} (/balances on|off)"
    )


async def _switch(
    message: Message, command: CommandObject, services: BotServices, user_id: int, what: str
) -> None:
    try:
        on = parse_switch(command.args, what)
    except BadInput as exc:
        await message.answer(f"Sorry, {esc(exc)}")
        return
    linked = await services.read(accounts.list_accounts, user_id)
    if not linked:
        await message.answer("Link your xRocket account first: /connect TOKEN")
        return
    change = AccountUpdate(**{f"notify_{what}": on})
    for account in linked:
        await accounts.update_account(
            services.db, user_id, account.id, change, box=services.box, verify=services.verify
        )
    await message.answer(f"{what.capitalize()} notifications are {'on' if on else 'off'}.")


async def orders(
    message: Message, command: CommandObject, services: BotServices, user_id: int
) -> None:
    """Order notifications on or off, for every linked account."""
    await _switch(message, command, services, user_id, "orders")


async def balances(
    message: Message, command: CommandObject, services: BotServices, user_id: int
) -> None:
    """Balance notifications on or off, for every linked account."""
    await _switch(message, command, services, user_id, "balances")


def router() -> Router:
    """This feature's handlers, on a new router (one per dispatcher)."""
    router = Router(name="accounts")
    router.message.register(connect, Command("connect"))
    router.message.register(orders, Command("orders"))
    router.message.register(balances, Command("balances"))
    return router
