"""The latest prices the service has seen, as the engine stores them."""

from __future__ import annotations

from sqlmodel import Session, col, select

from alerts.db.models import Ticker
from alerts.services.errors import NotFound
from alerts.services.schemas import TickerPublic

MAX_TICKERS = 1000


def list_tickers(session: Session, symbols: list[str] | None = None) -> list[TickerPublic]:
    """Every known ticker (or the ones asked for), by symbol."""
    stmt = select(Ticker).order_by(col(Ticker.symbol)).limit(MAX_TICKERS)
    if symbols:
        stmt = stmt.where(col(Ticker.symbol).in_(symbols))
    return [TickerPublic.of(row) for row in session.exec(stmt)]


def read_ticker(session: Session, symbol: str) -> TickerPublic:
    """One symbol's latest prices, or NotFound if the service has seen none."""
    row = session.get(Ticker, symbol)
    if row is None:
        raise NotFound("ticker", symbol)
    return TickerPublic.of(row)
