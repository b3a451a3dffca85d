"""`alerts run` as a subprocess, for end-to-end tests: started, waited for until its API
answers, and stopped with Ctrl-C (SIGINT) at the end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx


@dataclass
class Running:
    """The process, a client of its API, and (once it has stopped) its exit and stderr."""

    process: asyncio.subprocess.Process
    client: httpx.AsyncClient
    returncode: int | None = None
    stderr: str = ""


@contextlib.asynccontextmanager
async def alerts_run(env: dict[str, str], port: int) -> AsyncIterator[Running]:
    """`alerts run --port port` with `env` over this process's environment."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alerts.cli", "run", "--port", str(port),
        env={**os.environ, **env}, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    running = Running(process, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5))
    try:
        async with running.client as client:
            deadline = time.monotonic() + 30
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                assert process.returncode is None, "alerts run exited early"
                assert time.monotonic() < deadline, "alerts run did not start"
                await asyncio.sleep(0.1)
            yield running
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = await process.communicate()
        running.returncode, running.stderr = process.returncode, stderr.decode()
