"""The `alerts` console script: `parser` reads the command line, `commands` and `simulate`
carry the commands out."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from alerts import logs
from alerts.cli.exits import EXIT_CONFIG, EXIT_OK, EXIT_UNAVAILABLE
from alerts.cli.parser import build_parser
from alerts.cli.simulate import simulator_config
from alerts.settings import Settings

__all__ = ["EXIT_CONFIG", "EXIT_OK", "EXIT_UNAVAILABLE", "main", "simulator_config"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `alerts` console script."""
    parser = build_parser()
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


def _describe(exc: ValidationError) -> str:
    # Only the variable and the complaint: the rejected value may be a secret.
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]).upper()
        lines.append(f"  {name}: {error['msg']}")
    return "\n".join(lines)
