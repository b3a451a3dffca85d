"""What the recorder could not write even on its own goes here: a row in `dead_letters` with
the error, bounded and cleaned so that the row itself can always be stored. Also the probe
that tells a bad row (the database answers) from a database that is down (it does not)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.exc import SQLAlchemyError

from alerts.db.models import DeadLetter
from alerts.db.session import Database
from alerts.domain.events import Ticker

logger = logging.getLogger("alerts.engine")

_TABLE = DeadLetter.metadata.tables["dead_letters"]
_TEXT = 200  # per value kept
_VALUES = 40  # values kept


def clean(value: object, limit: int = _TEXT) -> str:
    """`value` as text that any column can hold: no NUL, no more than `limit` characters."""
    text_ = str(value).replace("\x00", "")
    return text_ if len(text_) <= limit else text_[: limit - 1] + "…"


def describe(exc: BaseException) -> str:
    """An error in a line: the driver's own error where there is one (SQLAlchemy's message
    would quote the whole statement and its parameters)."""
    inner = getattr(exc, "orig", None) or exc
    return clean(f"{type(inner).__name__}: {inner}", 500)


def payload(values: dict[str, Any]) -> dict[str, str]:
    """A hit's values (or a price's fields) as bounded text."""
    items = list(values.items())[:_VALUES]
    return {clean(key, 40): clean(value) for key, value in items}


def write(
    db: Database,
    *,
    kind: str,
    rule_id: int | None,
    symbol: str | None,
    values: dict[str, Any],
    error: BaseException,
    now: datetime,
) -> None:
    """Keep what could not be recorded, with why."""
    row = {
        "kind": kind,
        "rule_id": rule_id if rule_id is None or 0 <= rule_id < 2**63 else None,
        "symbol": None if symbol is None else clean(symbol, 40),
        "payload": payload(values),
        "error": describe(error),
        "created_at": now,
    }
    with db.writing() as session:
        session.execute(insert(_TABLE).values(**row))
        session.commit()
    logger.error(
        "could not record a %s (rule %s, %s): %s; kept in dead_letters",
        kind,
        rule_id,
        row["symbol"],
        row["error"],
    )


def database_answers(db: Database) -> bool:
    """Whether the database takes a trivial statement now."""
    try:
        with db.session() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


def ticker_values(ticker: Ticker) -> dict[str, object]:
    """What a dead-lettered price keeps."""
    return {"last": ticker.last, "bid": ticker.bid, "ask": ticker.ask}


def balance_values(balances: Mapping[int, Mapping[str, Any]]) -> dict[str, object]:
    """What a dead-lettered account state keeps (one account's)."""
    account, values = next(iter(balances.items()))
    return {"account": account, **values}
