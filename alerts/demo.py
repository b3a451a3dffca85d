"""`alerts demo`: the built-in simulator streamed through the feed client to the console."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from decimal import Decimal
from typing import TextIO

from alerts.domain.events import BalanceUpdate, Candle, FeedEvent, Order, Ticker, Trade
from alerts.feed import Backoff, FeedClient, FeedConfig, Subscription
from alerts.simulator import Simulator, SimulatorConfig

DEMO_TOKEN = "demo-token"  # noqa: S105 - the in-process simulator's public token
_BANNER = """\
xRocket alerts demo: an in-process exchange simulator at {url}
streamed through the feed client. Prices, trades, closed candles, order
updates and balance changes print below as typed events arrive.
Rules, delivery and the API join this demo as those parts land.
Ctrl-C stops.
"""


class ConsolePrinter:
    """Prints each feed event as one readable line."""

    def __init__(self, out: TextIO = sys.stdout, ticker_every: float = 3.0) -> None:
        self._out = out
        self._ticker_every = ticker_every
        self._ticker_printed: dict[str, float] = {}

    def __call__(self, event: FeedEvent) -> None:
        """Print `event` (each symbol's price at most every few seconds, to stay readable)."""
        line = self._format(event)
        if line is not None:
            print(line, file=self._out, flush=True)

    def _format(self, event: FeedEvent) -> str | None:
        if isinstance(event, Ticker):
            now = time.monotonic()
            if (
                now - self._ticker_printed.get(event.symbol, -self._ticker_every)
                < self._ticker_every
            ):
                return None
            self._ticker_printed[event.symbol] = now
            return (
                f"price   {event.symbol:<10} last {_show(event.last)}"
                f" bid {_show(event.bid)} ask {_show(event.ask)}"
            )
        if isinstance(event, Trade):
            return (
                f"trade   {event.symbol:<10} {event.side} {_show(event.quantity)}"
                f" @ {_show(event.price)}"
            )
        if isinstance(event, Candle):
            if not event.closed:
                return None
            return f"candle  {event.symbol:<10} {event.interval} closed at {_show(event.close)}"
        if isinstance(event, Order):
            return (
                f"order   {event.symbol:<10} {event.side} #{event.order_id} {event.status}"
                f" filled {_show(event.executed_quantity)}/{_show(event.quantity)}"
                f" avg {_show(event.average_price)}"
            )
        if isinstance(event, BalanceUpdate):
            parts = ", ".join(
                f"{b.currency} {_show(b.available)} (+{_show(b.locked)} locked)"
                for b in event.balances
            )
            return f"balance {'all' if event.full else 'changed'}: {parts}"
        return None


def _show(value: Decimal | None) -> str:
    """A decimal as people write it: no exponent, no trailing zeros."""
    if value is None:
        return "-"
    return format(value.normalize(), "f") if value else "0"


async def run_demo(seconds: float | None = None, out: TextIO = sys.stdout) -> None:
    """Run the simulator and two feed connections (public, private) for `seconds` or forever."""
    config = SimulatorConfig(tick_interval=0.5, tokens={DEMO_TOKEN: 1}, order_activity_interval=2.0)
    printer = ConsolePrinter(out)
    # The in-process exchange is scenery here: only its problems are worth a log line.
    for name in ("alerts.simulator", "alerts.simulator.ws"):
        logging.getLogger(name).setLevel(logging.WARNING)
    async with Simulator(config) as sim:
        print(_BANNER.format(url=sim.url), file=out, flush=True)
        fast = Backoff(initial=0.2, maximum=5.0)
        public = FeedClient(FeedConfig(url=sim.url, backoff=fast), printer)
        private = FeedClient(
            FeedConfig(url=sim.url, token=DEMO_TOKEN, name="account", account="demo", backoff=fast),
            printer,
        )
        for symbol in config.symbols:
            await public.subscribe(Subscription.ticker(symbol))
        await public.subscribe(Subscription.trades(config.symbols[0]))
        await public.subscribe(Subscription.candles(config.symbols[0], "1min"))
        await private.subscribe(Subscription.balances())
        await private.subscribe(Subscription.active_orders())
        tasks = [asyncio.create_task(public.run()), asyncio.create_task(private.run())]
        try:
            await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await public.stop()
            await private.stop()
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
