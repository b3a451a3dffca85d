"""`alerts simulate`: run the exchange simulator configured from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from alerts.cli.exits import EXIT_CONFIG, EXIT_OK, EXIT_UNAVAILABLE
from alerts.settings import Settings
from alerts.simulator import SimulatorConfig, generated_symbols, serve_forever


def simulate(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the simulator until interrupted."""
    try:
        config = simulator_config(args)
    except ValueError as exc:
        print(f"alerts simulate: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        asyncio.run(serve_forever(config, args.host, args.port))
    except OSError as exc:
        print(
            f"alerts simulate: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return EXIT_UNAVAILABLE
    return EXIT_OK


def simulator_config(args: argparse.Namespace) -> SimulatorConfig:
    """Build the simulator's configuration from `alerts simulate` arguments."""
    defaults = SimulatorConfig()
    if args.generate < 0:
        raise ValueError("--generate must not be negative")
    if args.symbols is not None:
        symbols = _split(args.symbols)
    else:
        symbols = [] if args.generate else list(defaults.symbols)
    symbols += generated_symbols(args.generate)
    if not symbols:
        raise ValueError("no symbols: give --symbols or --generate")
    tokens: dict[str, int] = {}
    for entry in args.token:
        token, _, user = entry.partition("=")
        if not token:
            raise ValueError("--token needs a value")
        try:
            tokens[token] = int(user) if user else len(tokens) + 1
        except ValueError:
            raise ValueError("--token USER_ID must be an integer") from None
    if not 0 <= args.malformed_rate <= 1:
        raise ValueError("--malformed-rate must be between 0 and 1")
    if args.tick_interval < 0:
        raise ValueError("--tick-interval must not be negative")
    return SimulatorConfig(
        symbols=tuple(dict.fromkeys(symbols)),
        tick_interval=args.tick_interval,
        seed=args.seed,
        tokens=tokens or dict(defaults.tokens),
        blocked_tokens=frozenset(args.blocked_token),
        suspended_symbols=frozenset(_split(args.suspended)),
        scripts=_load_script(args.script) if args.script else {},
        idle_timeout=args.idle_timeout,
        order_activity_interval=args.order_activity,
        malformed_rate=args.malformed_rate,
    )


def _load_script(path: Path) -> dict[str, list[Decimal]]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read script {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError("a script is a JSON object of symbol -> list of prices")
    try:
        return {str(sym): [Decimal(str(p)) for p in prices] for sym, prices in raw.items()}
    except (InvalidOperation, TypeError):
        raise ValueError("script prices must be decimal numbers or strings") from None


def _split(value: str) -> list[str]:
    return [part.strip().upper() for part in value.split(",") if part.strip()]
