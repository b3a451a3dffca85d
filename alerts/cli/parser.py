"""The `alerts` command line: its commands, their arguments and help."""

from __future__ import annotations

import argparse
from pathlib import Path

from alerts import __version__
from alerts.cli.commands import api, bot, db_upgrade, demo, engine, run, worker
from alerts.cli.simulate import simulate


def build_parser() -> argparse.ArgumentParser:
    """The parser of every `alerts` command; each sets `handler` to the function to run."""
    parser = argparse.ArgumentParser(
        prog="alerts", description="xRocket alerts: market and account alerts for xRocket."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    for name, summary, handler in (
        ("run", "run API, engine and delivery in one process (migrates first)", run),
        ("api", "run the REST API alone (the database must be migrated)", api),
    ):
        sub = commands.add_parser(name, help=summary, description=summary)
        sub.add_argument("--host", default="127.0.0.1", help="API address (default 127.0.0.1)")
        sub.add_argument("--port", type=int, default=8000, help="API port (default 8000)")
        sub.set_defaults(handler=handler)
    for name, summary, handler in (
        ("engine", "run the rule engine alone (the database must be migrated)", engine),
        ("worker", "run a delivery worker alone (the database must be migrated)", worker),
        ("bot", "run the Telegram bot alone (needs TELEGRAM_BOT_TOKEN)", bot),
    ):
        commands.add_parser(name, help=summary, description=summary).set_defaults(handler=handler)

    demo_parser = commands.add_parser(
        "demo",
        help="the whole service against a built-in simulator, alerts printed to the console",
    )
    demo_parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    demo_parser.add_argument(
        "--port", type=int, default=8000, help="API port (default 8000; any free one if taken)"
    )
    demo_parser.add_argument(
        "--apprise",
        action="append",
        default=[],
        metavar="URL",
        help="also send every alert to this Apprise URL (repeatable)",
    )
    demo_parser.set_defaults(handler=demo)

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_commands.add_parser("upgrade", help="apply migrations").set_defaults(handler=db_upgrade)

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
    sim.set_defaults(handler=simulate)
