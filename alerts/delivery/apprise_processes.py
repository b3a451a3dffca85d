"""Apprise sends in helper processes, so that they use every core.

An Apprise plugin's send is blocking Python (requests, smtplib…): about 1 ms of CPU for a
webhook, under the interpreter lock of whichever process runs it. In the service's own
process they took turns with the engine and the Telegram sends, and all of them together
ran on one core. Here each helper process runs sends in threads of its own; the service
writes each send to the helper with the fewest in flight (a line of JSON on its stdin) and
reads the result back from its stdout, with no thread of its own. A helper's threads keep
their HTTP connections from send to send (`alerts.delivery.kept_connections`).

A helper gets only the environment a send needs (proxies, trust store, locale, where Python
and its packages are): none of the service's settings, so neither the bot token, the secret
key nor the database's password is in a process that runs a plugin against a user's URL (and
`requests` scans a smaller environment on every send).

A helper starts with the first send that needs it; one that dies fails its sends in flight
(to be retried; whether they went out is unknown) and is started again by the next send.
Helpers end when the notifier closes, or when the service's process dies (their stdin
closes).

Run as `python -m alerts.delivery.apprise_processes THREADS [private]`, this module is a
helper (`private`: ALERTS_ALLOW_PRIVATE_TARGETS is on).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from alerts.delivery import kept_connections
from alerts.delivery.apprise_calls import Plugins, Result, notify

logger = logging.getLogger("alerts.delivery.apprise")

_encode = msgspec.json.Encoder().encode
_request = msgspec.json.Decoder(tuple[int, str, str, str]).decode
_answer = msgspec.json.Decoder(tuple[int, str, list[str]]).decode
# A line holds a whole message; asyncio's default limit (64 KiB) could be less.
_LINE_LIMIT = 16 * 1024 * 1024


# What a helper keeps of the service's environment: names, and prefixes (ending in "_").
_KEPT = frozenset(
    {"PATH", "HOME", "TMPDIR", "TZ", "LANG", "LANGUAGE", "VIRTUAL_ENV", "SYSTEMROOT"}
    | {"SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NETRC"}
    | {f"{p}_PROXY" for p in ("HTTP", "HTTPS", "ALL", "NO", "FTP", "SOCKS")}
)
_KEPT_PREFIXES = ("LC_", "PYTHON", "APPRISE_")


def helper_environment(environ: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The part of `environ` a helper process is started with."""
    return {
        name: value
        for name, value in environ.items()
        if name.upper() in _KEPT or name.upper().startswith(_KEPT_PREFIXES)
    }


class HelperGone(Exception):
    """The helper process running a send ended before it answered."""


class _Helper:
    """One helper process and the sends it has in flight."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        # Number -1 answers once the helper has imported Apprise and is ready for sends.
        self.ready: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.waiting: dict[int, asyncio.Future[Result]] = {-1: self.ready}
        self.reader = asyncio.create_task(self._read())

    @property
    def alive(self) -> bool:
        return self.process.returncode is None and not self.reader.done()

    def send(self, number: int, url: str, body: str, title: str) -> asyncio.Future[Result]:
        assert self.process.stdin is not None
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self.waiting[number] = future
        self.process.stdin.write(_encode((number, url, body, title)) + b"\n")
        return future

    async def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            while line := await self.process.stdout.readline():
                number, status, detail = _answer(line)
                future = self.waiting.pop(number, None)
                if future is not None and not future.done():
                    future.set_result((status, detail))  # type: ignore[arg-type]
        except (OSError, ValueError, msgspec.DecodeError) as exc:
            logger.error("an Apprise helper process broke its pipe: %s", type(exc).__name__)
            self._kill()
        finally:
            for future in self.waiting.values():
                if not future.done():
                    future.set_exception(HelperGone())
            self.waiting.clear()

    def _kill(self) -> None:
        # os.kill, not Process.kill: that polls the process, and reaping it there would race
        # the event loop's child watcher (which then reports an unknown child).
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)

    async def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()  # the helper finishes what it has, then exits
        try:
            async with asyncio.timeout(5):
                await self.process.wait()
        except TimeoutError:
            self._kill()
            await self.process.wait()
        await self.reader


class ProcessPool:
    """Runs `notify` calls in up to `processes` helper processes of `threads` threads each."""

    def __init__(self, processes: int, threads: int, *, allow_private: bool = False) -> None:
        self.processes = processes
        self.threads = threads
        self.allow_private = allow_private
        self._helpers: list[_Helper] = []
        self._starting = asyncio.Lock()
        self._numbers = itertools.count()

    async def call(self, url: str, body: str, title: str) -> asyncio.Future[Result]:
        """Hand a send to a helper; its result, or `HelperGone`, once it has answered."""
        helper = await self._helper()
        return helper.send(next(self._numbers), url, body, title)

    async def _helper(self) -> _Helper:
        self._helpers = [h for h in self._helpers if h.alive]
        idle = [h for h in self._helpers if not h.waiting]
        if idle or len(self._helpers) >= self.processes:
            return min(self._helpers, key=lambda h: len(h.waiting))
        async with self._starting:
            if len(self._helpers) < self.processes:
                helper = await self._spawn()
                self._helpers.append(helper)  # the list as it is after the wait
        return min(self._helpers, key=lambda h: len(h.waiting))

    async def _spawn(self) -> _Helper:
        """A new helper, once it is ready (its start-up does not count against a send's
        timeout); killed if the wait is cancelled."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            __name__,
            str(self.threads),
            *(["private"] if self.allow_private else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=helper_environment(os.environ),
            limit=_LINE_LIMIT,
        )
        helper = _Helper(process)
        try:
            await helper.ready
        except BaseException:
            helper._kill()
            raise
        return helper

    async def close(self) -> None:
        """Let the helpers finish their sends in flight, and end them."""
        helpers, self._helpers = self._helpers, []
        await asyncio.gather(*(h.close() for h in helpers), return_exceptions=True)


def _serve(threads: int, *, allow_private: bool) -> None:
    """The helper: read sends from stdin, run them in threads, answer on stdout."""
    kept_connections.keep()
    plugins = Plugins()
    out = sys.stdout.buffer
    writing = threading.Lock()

    def run(number: int, url: str, body: str, title: str) -> None:
        status, detail = notify(plugins, url, body, title, allow_private=allow_private)
        line = _encode((number, status, detail)) + b"\n"
        with writing:
            out.write(line)
            out.flush()

    out.write(_encode((-1, "ready", [])) + b"\n")
    out.flush()
    with ThreadPoolExecutor(threads, thread_name_prefix="apprise") as pool:
        for line in sys.stdin.buffer:
            pool.submit(run, *_request(line))


def main(argv: list[str] | None = None) -> Any:
    """Entry point of a helper process."""
    args = sys.argv[1:] if argv is None else argv
    _serve(int(args[0]) if args else 8, allow_private="private" in args[1:])


if __name__ == "__main__":
    main()
