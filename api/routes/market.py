"""The latest prices the service has seen."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from alerts.services import market
from alerts.services.schemas import TickerList, TickerPublic
from api.deps import CallerDep, ContextDep, SessionDep, in_db
from api.errors import NOT_FOUND

router = APIRouter(prefix="/market", tags=["market"])

_SYMBOL = r"^[A-Za-z0-9]{1,16}-[A-Za-z0-9]{1,16}$"
_SYMBOLS = r"^[A-Za-z0-9]{1,16}-[A-Za-z0-9]{1,16}(,[A-Za-z0-9]{1,16}-[A-Za-z0-9]{1,16}){0,99}$"


@router.get("/tickers", response_model=TickerList)
async def list_tickers(
    context: ContextDep,
    session: SessionDep,
    caller: CallerDep,
    symbols: Annotated[
        str | None, Query(pattern=_SYMBOLS, description="Comma-separated, e.g. BTC-USDT,TON-USDT")
    ] = None,
) -> TickerList:
    """The latest prices of the symbols named, or else of those your rules follow."""
    wanted = [s.upper() for s in symbols.split(",")] if symbols else None
    return TickerList(
        items=await in_db(context, market.list_tickers, session, wanted, follower=caller.user_id)
    )


@router.get("/tickers/{symbol}", response_model=TickerPublic, responses={**NOT_FOUND})
async def read_ticker(
    context: ContextDep,
    session: SessionDep,
    _caller: CallerDep,
    symbol: Annotated[str, Path(pattern=_SYMBOL)],
) -> TickerPublic:
    """One symbol's latest prices (404 if the service has seen none yet)."""
    return await in_db(context, market.read_ticker, session, symbol.upper())
