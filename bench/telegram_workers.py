"""Telegram's limits across worker processes: three `alerts worker` on one PostgreSQL database
send one push's alerts to 3,000 chats (one alert each) through a fake Bot API in its own
process that answers 429 to anything over Telegram's limits (30 messages in any second per
bot, one a second per private chat).

Judged by: 0 answers of 429, every alert delivered once, and the sustained rate (first
message to last) over the 30/s cap, goal >= 0.93 (issue 17).

    .venv/bin/python bench/telegram_workers.py [--chats 3000] [--workers 3] [--postgres URL]

Without --postgres, TEST_DATABASE_URL is used; a database is created for the run and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feed_throughput import free_port

from tests.pg import temporary_database
from tests.telegram_workers import run

CAP = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    if not args.postgres:
        sys.exit("needs PostgreSQL: pass --postgres URL or set TEST_DATABASE_URL")
    chats = list(range(100_000, 100_000 + args.chats))
    started = time.monotonic()
    with temporary_database(args.postgres, "alerts_bench") as url:
        result = asyncio.run(run(url, chats, workers=args.workers, port=free_port()))
    elapsed = time.monotonic() - started
    twice = result.sent - len(set(result.chats))
    missing = len(set(result.expected) - set(result.chats))
    print(
        f"{args.workers} workers, {args.chats:,} chats: {result.sent:,} messages, "
        f"{result.rejected} refused with 429, {missing} not delivered, {twice} twice; "
        f"{result.rate:.2f}/s sustained = {result.rate / CAP:.3f} of the {CAP:g}/s cap "
        f"(goal >= 0.93); {elapsed:.0f} s in all"
    )


if __name__ == "__main__":
    main()
