"""The `alerts` console script."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pydantic import ValidationError

from alerts import __version__, logs
from alerts.settings import Settings
from alerts.simulator import SimulatorConfig, generated_symbols, serve_forever

logger = logging.getLogger("alerts.cli")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 4


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `alerts` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"alerts: invalid configuration:\n{_describe(exc)}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(settings.log_level, settings.log_format)
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    try:
        return handler(args, settings)
    except KeyboardInterrupt:
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alerts", description="xRocket alerts: market and account alerts for xRocket."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, summary, handler in (
        ("run", "run API, engine and delivery in one process (migrates first)", _run),
        ("api", "run the REST API alone (the database must be migrated)", _api),
    ):
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1)")
        sub.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
        sub.set_defaults(handler=handler)
    for name, summary, handler in (
        ("engine", "run the rule engine alone (the database must be migrated)", _engine),
        ("worker", "run a delivery worker alone (the database must be migrated)", _worker),
        ("bot", "run the Telegram bot alone (needs TELEGRAM_BOT_TOKEN)", _bot),
    ):
        commands.add_parser(name, help=summary, description=summary).set_defaults(handler=handler)

    demo = commands.add_parser(
        "demo",
        help="the whole service against a built-in simulator, alerts printed to the console",
    )
    demo.add_argument("--seconds", type=float, default=None, help="stop after this long")
    demo.add_argument(
        "--port", type=int, default=8000, help="API port (default 8000; any free one if taken)"
    )
    demo.add_argument(
        "--apprise",
        action="append",
        default=[],
        metavar="URL",
        help="also send every alert to this Apprise URL (repeatable)",
    )
    demo.set_defaults(handler=_demo)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_commands.add_parser("upgrade", help="apply migrations").set_defaults(handler=_db_upgrade)

    _add_simulate(commands)
    return parser


def _add_simulate(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = commands.add_parser(
        "simulate",
        help="run an xRocket-compatible exchange server",
        description="An xRocket-compatible WebSocket server for demos and tests.",
    )
    sim.add_argument("--host", default="127.0.0.1", help="address (default 127.0.0.1)")
    sim.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    sim.add_argument(
        "--symbols",
        default=None,
        help="comma-separated symbols (default: BTC-USDT,ETH-USDT,TON-USDT,NOT-USDT,DOGS-USDT)",
    )
    sim.add_argument(
        "--generate",
        type=int,
        default=0,
        metavar="N",
        help="N generated symbols SYM0-USDT... (instead of the defaults unless --symbols is given)",
    )
    sim.add_argument(
        "--tick-interval",
        type=float,
        default=0.5,
        help="seconds between market ticks; 0 runs as fast as possible (default 0.5)",
    )
    sim.add_argument("--seed", type=int, default=None, help="seed of the random walk")
    sim.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN[=USER_ID]",
        help="a valid API token (repeatable; default: demo-token for user 1)",
    )
    sim.add_argument(
        "--blocked-token", action="append", default=[], help="a token whose user is blocked"
    )
    sim.add_argument(
        "--suspended", default="", help="comma-separated symbols whose trading is suspended"
    )
    sim.add_argument(
        "--script", type=Path, default=None, help='JSON file {"BTC-USDT": ["70000", ...]}'
    )
    sim.add_argument(
        "--idle-timeout", type=float, default=60.0, help="close idle connections after (s)"
    )
    sim.add_argument(
        "--order-activity",
        type=float,
        default=None,
        metavar="SECONDS",
        help="random orders and balance changes for authenticated users at this period",
    )
    sim.add_argument(
        "--malformed-rate",
        type=float,
        default=0.0,
        help="fraction of pushes replaced by malformed frames (fault injection)",
    )
    sim.set_defaults(handler=_simulate)


def _simulate(args: argparse.Namespace, settings: Settings) -> int:
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


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.demo import run_demo

    asyncio.run(run_demo(args.seconds, port=args.port, apprise=args.apprise))
    return EXIT_OK


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.db.migrate import upgrade

    upgrade(settings.database_url)
    print("database is at the latest revision")
    return EXIT_OK


def _migrated(command: str, settings: Settings) -> bool:
    from alerts.db.migrate import is_current

    if is_current(settings.database_url):
        return True
    print(
        f"alerts {command}: the database is not migrated to the latest revision: "
        "run `alerts db upgrade` first",
        file=sys.stderr,
    )
    return False


def _listenable(command: str, host: str, port: int) -> bool:
    try:
        # Checked here for a one-line error; uvicorn binds itself, so that asyncio's sockets
        # get TCP_NODELAY (a socket handed over from here would not, costing 40 ms a reply).
        socket.create_server((host, port)).close()
    except OSError as exc:
        print(f"alerts {command}: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return False
    return True


def _api(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.runtime import run_api

    if not _migrated("api", settings):
        return EXIT_CONFIG
    if not _listenable("api", args.host, args.port):
        return EXIT_UNAVAILABLE
    logger.info("REST API on http://%s:%s (docs at /docs)", args.host, args.port)
    asyncio.run(run_api(settings, args.host, args.port))
    return EXIT_OK


def _engine(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.runtime import run_engine

    if not _migrated("engine", settings):
        return EXIT_CONFIG
    asyncio.run(run_engine(settings))
    return EXIT_OK


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.runtime import run_worker

    if not _migrated("worker", settings):
        return EXIT_CONFIG
    asyncio.run(run_worker(settings))
    return EXIT_OK


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.db.migrate import upgrade
    from alerts.runtime import run_all

    if not _listenable("run", args.host, args.port):
        return EXIT_UNAVAILABLE
    upgrade(settings.database_url)
    asyncio.run(run_all(settings, args.host, args.port))
    return EXIT_OK


def _bot(args: argparse.Namespace, settings: Settings) -> int:
    from alerts.runtime import run_bot

    if settings.telegram_bot_token is None:
        print("alerts bot: set TELEGRAM_BOT_TOKEN (from @BotFather) first", file=sys.stderr)
        return EXIT_CONFIG
    if not _migrated("bot", settings):
        return EXIT_CONFIG
    asyncio.run(run_bot(settings))
    return EXIT_OK


def _describe(exc: ValidationError) -> str:
    # Only the variable and the complaint: the rejected value may be a secret.
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]).upper()
        lines.append(f"  {name}: {error['msg']}")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
