"""The latest prices the service has seen, as the engine stores them."""

from __future__ import annotations

from sqlmodel import Session, col, select

from alerts.db.models import Rule, Ticker
from alerts.services.errors import NotFound
from alerts.services.schemas import TickerPublic

MAX_TICKERS = 1000


def list_tickers(
    session: Session, symbols: list[str] | None = None, *, follower: int | None = None
) -> list[TickerPublic]:
    """The tickers asked for by name; without names, those of the symbols `follower`'s rules
    follow (or, for no follower, every known one), by symbol."""
    stmt = select(Ticker).order_by(col(Ticker.symbol)).limit(MAX_TICKERS)
    if symbols:
        stmt = stmt.where(col(Ticker.symbol).in_(symbols))
    elif follower is not None:
        followed = select(Rule.symbol).where(Rule.user_id == follower).distinct()
        stmt = stmt.where(col(Ticker.symbol).in_(followed))
    return [TickerPublic.of(row) for row in session.exec(stmt)]


def read_ticker(session: Session, symbol: str) -> TickerPublic:
    """One symbol's latest prices, or NotFound if the service has seen none."""
    row = session.get(Ticker, symbol)
    if row is None:
        raise NotFound("ticker", symbol)
    return TickerPublic.of(row)
