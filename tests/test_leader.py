"""Engine leader election: one leads, the other waits on standby and takes over when the
leader's lock goes (its connection dropped, as when its process dies)."""

from __future__ import annotations

import asyncio
import time

from alerts.db.leadership import Leadership
from alerts.db.migrate import upgrade
from alerts.db.session import Database


async def test_a_standby_takes_over_when_the_leader_goes(database_url: str) -> None:
    upgrade(database_url)
    first_db, second_db = Database(database_url), Database(database_url)
    first = Leadership(first_db, interval=0.05)
    second = Leadership(second_db, interval=0.05)
    try:
        await asyncio.wait_for(first.acquire(), 5)
        standby = asyncio.create_task(second.acquire())
        await asyncio.sleep(0.3)
        assert not standby.done(), "two leaders at once"

        started = time.monotonic()
        if first_db.dialect == "sqlite":
            await first.release()  # a dead process's file lock goes with it
        else:
            first._conn.invalidate()  # type: ignore[union-attr]  # the connection drops
        await asyncio.wait_for(standby, 5)
        print(f"standby took over in {time.monotonic() - started:.2f} s")
        if first_db.dialect != "sqlite":
            await asyncio.wait_for(first.lost.wait(), 5)  # and the old leader knows it
    finally:
        await first.release()
        await second.release()
        first_db.dispose()
        second_db.dispose()
