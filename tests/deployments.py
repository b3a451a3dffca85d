"""The service as it is deployed, in subprocesses, for end-to-end tests in either layout:

- `run`: one `alerts run` process (API, engine, delivery and bot), here on SQLite;
- `split`: `alerts api`, `alerts engine`, two `alerts worker` and (with a bot token)
  `alerts bot`, each in its own process on PostgreSQL, as `docker-compose.yml` runs them.

A test that takes the `layout` fixture runs in both, so delivery, crashes, shutdown, mute and
grouping are shown to behave the same however the service is deployed."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from alerts.db.migrate import upgrade
from tests.feed_helpers import eventually
from tests.test_cli import free_port

ROOT = Path(__file__).resolve().parents[1]


class Process:
    """One `alerts` role in its own process, its log kept."""

    def __init__(
        self, role: str, proc: asyncio.subprocess.Process, metrics: str | None = None
    ) -> None:
        self.role, self.proc, self.log = role, proc, ""
        self.metrics = metrics  # the URL of its /metrics, if it serves one of its own
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for line in self.proc.stderr:
            self.log += line.decode(errors="replace")

    @classmethod
    async def start(cls, role: str, *args: str, env: dict[str, str]) -> Process:
        metrics = None
        if role in ("engine", "worker"):  # no API: their /metrics on a port of their own
            address = f"127.0.0.1:{free_port()}"
            env, metrics = {**env, "ALERTS_METRICS_ADDRESS": address}, f"http://{address}/metrics"
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "alerts.cli", role, *args,
            cwd=ROOT, env=env, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        return cls(role, proc, metrics)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    async def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._reader


@dataclass
class Layout:
    """How the service is deployed, and on which database."""

    name: str  # "run" or "split"
    database_url: str

    def __str__(self) -> str:
        return self.name


@dataclass
class Deployment:
    """The processes of one layout, started and stopped together, and a client of the API."""

    layout: Layout
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    processes: list[Process] = field(default_factory=list)

    @property
    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=5)

    @property
    def log(self) -> str:
        """Every process's log, each under its role."""
        return "".join(f"--- alerts {p.role} ---\n{p.log}" for p in self.processes)

    @property
    def returncodes(self) -> dict[str, int | None]:
        return {f"{p.role}#{i}": p.returncode for i, p in enumerate(self.processes)}

    async def start(self) -> None:
        """Start every process and wait until the API answers and (split) every worker and
        the engine are at work."""
        env = {**os.environ, "DATABASE_URL": self.layout.database_url, **self.env}
        port = str(self.port)
        if self.layout.name == "run":
            self.processes = [await Process.start("run", "--port", port, env=env)]
        else:
            upgrade(self.layout.database_url)  # docker-compose.yml's one-shot `migrate`
            roles = [("api", "--port", port), ("engine",), ("worker",), ("worker",)]
            if env.get("TELEGRAM_BOT_TOKEN"):
                roles.append(("bot",))
            self.processes = [await Process.start(*role, env=env) for role in roles]
        try:
            await self._wait_until_up()
        except BaseException:
            print(self.log[-6000:])
            raise

    async def _wait_until_up(self) -> None:
        async with self.client as client:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                assert all(p.returncode is None for p in self.processes), "a process exited"
                assert time.monotonic() < deadline, "the API did not start"
                await asyncio.sleep(0.1)
        up: dict[str, str] = {"worker": "delivery worker running", "engine": "this engine leads"}
        for process in self.processes:
            if process.role in up:
                said = lambda p=process: up[p.role] in p.log  # noqa: E731
                await eventually(said, timeout=60, message=f"alerts {process.role} up")

    def signal(self, sig: signal.Signals) -> None:
        for process in self.processes:
            if process.returncode is None:
                process.proc.send_signal(sig)

    async def wait(self, timeout: float) -> float:
        """Wait for every process to exit; the seconds that took."""
        began = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(p.proc.wait() for p in self.processes)), timeout)
        for process in self.processes:
            await process._reader
        return time.monotonic() - began

    async def interrupt(self, sig: signal.Signals, when: Callable[[], bool]) -> float:
        """Start, wait until `when()` holds, send `sig` to every process and wait for them
        to exit; the seconds from the signal to the last exit."""
        await self.start()
        try:
            await eventually(when, timeout=30, message=f"the moment for {sig.name}")
        finally:
            self.signal(sig)
        return await self.wait(30)

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.processes))

    def assert_clean_exit(self, secret: str) -> None:
        """Every process exited 0 without a traceback, and `secret` is in no log."""
        for process in self.processes:
            assert process.returncode == 0, f"alerts {process.role}: {process.log[-3000:]}"
            assert "Traceback" not in process.log, process.log[-3000:]
            assert secret not in process.log


@contextlib.asynccontextmanager
async def deployed(layout: Layout, env: dict[str, str]) -> AsyncIterator[Deployment]:
    """The service started in `layout` with `env`, stopped with SIGTERM at the end; on a
    failure inside, each process's log is printed to tell why."""
    deployment = Deployment(layout, env)
    await deployment.start()
    try:
        yield deployment
    except BaseException:
        print(deployment.log[-6000:])
        raise
    finally:
        await deployment.stop()
