"""/price SYMBOL: the latest ticker the engine has stored."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from pydantic import TypeAdapter, ValidationError

from alerts.bot.context import BotServices, esc
from alerts.domain.values import Symbol
from alerts.services.errors import NotFound
from alerts.services.market import read_ticker

_symbol: TypeAdapter[str] = TypeAdapter(Symbol)


async def price(message: Message, command: CommandObject, services: BotServices) -> None:
    """Answer with the last, bid and ask prices, and how old they are."""
    try:
        symbol = _symbol.validate_python((command.args or "").strip())
    except ValidationError:
        await message.answer("Which symbol? For example: /price BTC-USDT")
        return
    try:
        ticker = await services.read(read_ticker, symbol)
    except NotFound:
        await message.answer(
            f"No price for {esc(symbol)} yet: either the exchange has no such symbol, or no "
            f"alert follows it so far. Create one and prices start arriving, e.g. "
            f"/alert {esc(symbol)} above 100"
        )
        return
    lines = [f"<b>{esc(ticker.symbol)}</b>"]
    for label, value in (("Last", ticker.last), ("Bid", ticker.bid), ("Ask", ticker.ask)):
        if value is not None:
            lines.append(f"{label}: <code>{esc(value)}</code>")
    if ticker.change_percent is not None:
        lines.append(f"24 h: {esc(ticker.change_percent)}%")
    lines.append(f"as of {ticker.updated_at:%Y-%m-%d %H:%M:%S} UTC")
    await message.answer("\n".join(lines))


def router() -> Router:
    """This feature's handlers, on a new router (one per dispatcher)."""
    router = Router(name="market")
    router.message.register(price, Command("price"))
    return router
