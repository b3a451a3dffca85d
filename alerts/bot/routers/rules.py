"""/alert, /alerts, /delete, and the buttons on alert lists, confirmations and alerts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.filters.callback_data import CallbackData
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from pydantic import ValidationError

from alerts.bot.context import BotServices, esc
from alerts.bot.parse import ALERT_EXAMPLES, BadInput, parse_alert, parse_id, valid_id
from alerts.services.errors import LimitReached, NotFound, ServiceError
from alerts.services.rule_schemas import RulePage, RulePublic, rule_create_adapter
from alerts.services.rules import create_rule, delete_rule, list_rules, switch_rule


class RuleAction(CallbackData, prefix="r"):
    """A button on a rule: pause, resume, delete (in a list, from page `after`) or undo."""

    action: str
    rule_id: int
    after: int = 0


class Page(CallbackData, prefix="p"):
    """A page of the rule list, starting after rule id `after`."""

    after: int


# The buttons the delivery worker puts under every alert message (see delivery.telegram).
class Snooze(CallbackData, prefix="snooze"):
    rule_id: int
    seconds: int


class Disable(CallbackData, prefix="disable"):
    rule_id: int


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = ".".join(str(p) for p in error["loc"][1:] if not str(p).endswith("Create"))
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{field}: {message}" if field else message


async def alert(
    message: Message, command: CommandObject, services: BotServices, user_id: int
) -> None:
    """Create a price_cross or percent_change rule and offer to undo it."""
    try:
        data = rule_create_adapter.validate_python(parse_alert(command.args))
    except BadInput as exc:
        await message.answer(f"Sorry, {esc(exc)}")
        return
    except ValidationError as exc:
        await message.answer(
            f"Sorry, {esc(_first_problem(exc))}.\nFor example:\n{esc(ALERT_EXAMPLES)}"
        )
        return
    try:
        rule = await services.write(
            create_rule, user_id, data, now=services.clock(), max_rules=services.config.max_rules
        )
    except LimitReached:
        limit = services.config.max_rules
        await message.answer(
            f"You have {limit} alerts, the most allowed. Delete some (/alerts) first."
        )
        return
    except ServiceError as exc:
        await message.answer(esc(exc.message))
        return
    undo = RuleAction(action="undo", rule_id=rule.id).pack()
    await message.answer(
        f"✅ Alert <b>#{rule.id}</b>: {esc(rule.name)}.\nIt fires once, then switches off.",
        reply_markup=InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Undo", callback_data=undo)]]
        ),
    )


def _line(rule: RulePublic, now: datetime) -> str:
    if not rule.enabled:
        state = "paused"
    elif rule.snoozed_until is not None and rule.snoozed_until > now:
        state = f"snoozed until {rule.snoozed_until:%H:%M} UTC"
    else:
        state = "on"
    if rule.status:
        state += f" · ⚠️ {esc(rule.status)}"
    return f"<b>#{rule.id}</b> {esc(rule.name)} · {state}"


def _page_view(page: RulePage, after: int, now: datetime) -> tuple[str, InlineKeyboardMarkup]:
    if not page.items:
        text = "No alerts yet. Create one:\n" + esc(ALERT_EXAMPLES)
    else:
        text = "Your alerts:\n" + "\n".join(_line(r, now) for r in page.items)
    rows: list[list[InlineKeyboardButton]] = []
    for rule in page.items:
        switch = "resume" if not rule.enabled else "pause"
        rows.append(
            [
                InlineKeyboardButton(
                    text=f"{'▶ Resume' if switch == 'resume' else '⏸ Pause'} #{rule.id}",
                    callback_data=RuleAction(action=switch, rule_id=rule.id, after=after).pack(),
                ),
                InlineKeyboardButton(
                    text=f"🗑 Delete #{rule.id}",
                    callback_data=RuleAction(action="delete", rule_id=rule.id, after=after).pack(),
                ),
            ]
        )
    nav = []
    if after:
        nav.append(InlineKeyboardButton(text="« First", callback_data=Page(after=0).pack()))
    if page.next_cursor is not None:
        nav.append(
            InlineKeyboardButton(
                text="Next »", callback_data=Page(after=int(page.next_cursor)).pack()
            )
        )
    if nav:
        rows.append(nav)
    return text, InlineKeyboardMarkup(inline_keyboard=rows)


async def _page(
    services: BotServices, user_id: int, after: int
) -> tuple[str, InlineKeyboardMarkup]:
    size = services.config.page_size
    page = await services.read(list_rules, user_id, after=after or None, limit=size)
    return _page_view(page, after, services.clock())


async def alerts(message: Message, services: BotServices, user_id: int) -> None:
    """The user's rules, ten at a time, with buttons."""
    text, markup = await _page(services, user_id, 0)
    await message.answer(text, reply_markup=markup)


async def page(
    query: CallbackQuery, callback_data: Page, services: BotServices, user_id: int
) -> None:
    """Another page of the list."""
    after = callback_data.after if valid_id(callback_data.after) else 0
    text, markup = await _page(services, user_id, after)
    if isinstance(query.message, Message):
        await query.message.edit_text(text, reply_markup=markup)
    await query.answer()


async def rule_action(
    query: CallbackQuery, callback_data: RuleAction, services: BotServices, user_id: int
) -> None:
    """Pause, resume or delete from the list; undo a rule just made."""
    rule_id, action, now = callback_data.rule_id, callback_data.action, services.clock()
    if not valid_id(rule_id):
        await query.answer(f"Alert #{rule_id} no longer exists."[:200])
        return
    after = callback_data.after if valid_id(callback_data.after) else 0
    try:
        if action in ("delete", "undo"):
            await services.write(delete_rule, user_id, rule_id, now=now)
        elif action in ("pause", "resume"):
            await services.write(switch_rule, user_id, rule_id, now=now, enabled=action == "resume")
        else:
            await query.answer("That button is no longer valid.")
            return
    except NotFound:
        await query.answer(f"Alert #{rule_id} no longer exists.")
        return
    done = {"delete": "Deleted", "undo": "Deleted", "pause": "Paused", "resume": "Resumed"}
    if isinstance(query.message, Message):
        if action == "undo":
            await query.message.edit_text(f"Undone: alert #{rule_id} deleted.")
        else:
            text, markup = await _page(services, user_id, after)
            await query.message.edit_text(text, reply_markup=markup)
    await query.answer(f"{done[action]} alert #{rule_id}.")


async def delete(
    message: Message, command: CommandObject, services: BotServices, user_id: int
) -> None:
    """Delete one rule by id."""
    try:
        rule_id = parse_id(command.args, "delete")
        await services.write(delete_rule, user_id, rule_id, now=services.clock())
    except BadInput as exc:
        await message.answer(f"Sorry, {esc(exc)}")
        return
    except NotFound:
        await message.answer("You have no alert with that number. /alerts lists yours.")
        return
    await message.answer(f"Deleted alert #{rule_id}.")


async def _switch_from_alert(
    query: CallbackQuery, services: BotServices, user_id: int, rule_id: int, **change: Any
) -> bool:
    if not valid_id(rule_id):  # a forged button: no rule can have that id
        await query.answer("This alert no longer exists.")
        return False
    try:
        await services.write(switch_rule, user_id, rule_id, now=services.clock(), **change)
    except NotFound:  # deleted, or pressed by someone else in a group
        await query.answer("This alert no longer exists.")
        return False
    return True


async def snooze(
    query: CallbackQuery, callback_data: Snooze, services: BotServices, user_id: int
) -> None:
    """The "Snooze 1 h" button on an alert."""
    seconds = min(max(callback_data.seconds, 60), 7 * 86400)  # clamped: it may be forged
    until = services.clock() + timedelta(seconds=seconds)
    if await _switch_from_alert(
        query, services, user_id, callback_data.rule_id, snoozed_until=until
    ):
        await query.answer(f"Snoozed until {until:%H:%M} UTC.")


async def disable(
    query: CallbackQuery, callback_data: Disable, services: BotServices, user_id: int
) -> None:
    """The "Disable rule" button on an alert."""
    rule_id = callback_data.rule_id
    if await _switch_from_alert(query, services, user_id, rule_id, enabled=False):
        await query.answer(f"Alert #{rule_id} is off. /alerts turns it back on.")


def router() -> Router:
    """This feature's handlers, on a new router (one per dispatcher)."""
    router = Router(name="rules")
    router.message.register(alert, Command("alert"))
    router.message.register(alerts, Command("alerts"))
    router.callback_query.register(page, Page.filter())
    router.callback_query.register(rule_action, RuleAction.filter())
    router.message.register(delete, Command("delete"))
    router.callback_query.register(snooze, Snooze.filter())
    router.callback_query.register(disable, Disable.filter())
    return router
