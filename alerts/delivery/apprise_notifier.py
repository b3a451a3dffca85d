"""Every other destination through Apprise: bounded concurrency, a timeout per call, the
outcome mapped to retry or not, and the reason taken from Apprise's own log (scrubbed).

Each URL is one Apprise plugin object (`Apprise.instantiate`), and a send is a call of its
blocking `notify()` in a thread pool of our own, one thread per send in flight. We do not go
through `Apprise.async_notify`: it fans a message out to many services (tags, priorities,
escalation, a log capture per call) where we always have one, and it runs every plugin in
Apprise's process-wide pool of `cpu_count + 4` threads, so that no more than 6 sends were in
flight on two cores whatever our own bound said. With a local json:// receiver that layer cost
0.3-0.5 ms of CPU per send, against ~0.9 ms for the plugin's own HTTP request. Two per-URL
options live in that layer: `emojis=yes` is applied here; `retry=N` is not, as the worker
retries failed sends itself (with backoff, without holding a thread).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import re
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import apprise
from apprise.emojis import apply_emojis

from alerts.delivery.apprise_urls import captured_apprise_logs
from alerts.delivery.errors import SendFailed
from alerts.delivery.messages import Message

logger = logging.getLogger("alerts.delivery.apprise")
_HTTP_STATUS = re.compile(r"\b([1-5]\d\d)\b")


def _secrets_of(url: str) -> list[str]:
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    pieces = [url, parts.password or "", parts.username or "", parts.query]
    pieces += [p for p in re.split(r"[/:@?&=]", parts.netloc + parts.path + "/" + parts.query)]
    return sorted({p for p in pieces if len(p) >= 4}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` with every part of `url` that may be a secret replaced by ***."""
    for piece in _secrets_of(url):
        text = text.replace(piece, "***")
    return text


class AppriseNotifier:
    """Sends alert messages to Apprise URLs."""

    def __init__(self, *, concurrency: int = 32, timeout: float = 15.0, cache: int = 1024) -> None:
        self.timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        # Plugins block (requests, smtplib…): each send in flight holds a thread. Threads are
        # started on demand, so an idle notifier costs none.
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="apprise")
        self._plugins: OrderedDict[str, Any] = OrderedDict()
        self._cache = cache
        self._running: set[asyncio.Task[Any]] = set()

    def has_gone_out(self, task: asyncio.Task[Any]) -> bool:
        """Whether the send that `task` is making has started (its plugin running in a
        thread, which cannot be stopped): until then, cancelling it sends nothing."""
        return task in self._running

    def _plugin(self, url: str) -> Any | None:
        # Parsing a URL into a plugin costs more than many sends: keep recent ones.
        plugin = self._plugins.get(url)
        if plugin is not None:
            self._plugins.move_to_end(url)
            return plugin
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if plugin is None:
            return None
        self._plugins[url] = plugin
        if len(self._plugins) > self._cache:
            self._plugins.popitem(last=False)
        return plugin

    async def send(self, url: str, message: Message) -> None:
        """Send one message or raise `SendFailed` saying what to do next."""
        with captured_apprise_logs() as records:
            plugin = self._plugin(url)
            if plugin is None:
                raise SendFailed("Apprise cannot use this URL", retry=False)
            body, title = message.text, message.title
            if plugin.interpret_emojis:
                body, title = apply_emojis(body), apply_emojis(title)  # type: ignore[no-untyped-call]
            ok = await self._call(partial(plugin.notify, body=body, title=title))
        if ok:
            return
        problems = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
        reason = scrub(problems[-1] if problems else "Apprise reported a failure", url)
        codes = {int(c) for p in problems for c in _HTTP_STATUS.findall(p)}
        permanent = any(400 <= c < 500 and c not in (408, 425, 429) for c in codes)
        raise SendFailed(reason, retry=not permanent)

    async def _call(self, notify: Callable[[], object]) -> bool:
        await self._slots.acquire()
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            return await self._run(notify)
        finally:
            self._running.discard(task)

    async def _run(self, notify: Callable[[], object]) -> bool:
        loop = asyncio.get_running_loop()
        # The thread must log into this task's capture; a context does not follow on its own.
        context = contextvars.copy_context()
        try:
            future: Future[object] = self._pool.submit(context.run, notify)
        except BaseException:
            self._slots.release()
            raise

        def release(_: Future[object]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(self._slots.release)

        try:
            async with asyncio.timeout(self.timeout):
                return bool(await asyncio.wrap_future(future))
        except TimeoutError:
            raise SendFailed(f"no answer within {self.timeout:g} s", retry=True) from None
        except Exception as exc:  # noqa: BLE001  (a plugin may raise anything)
            # Apprise turns a crashing plugin into a failed send; so do we. Its message (and
            # so the chain) may quote the URL: only its type is kept.
            reason = f"the Apprise plugin failed ({type(exc).__name__})"
            raise SendFailed(reason, retry=True) from None
        finally:
            # A thread cannot be stopped: a send that outlived its timeout (or our task) keeps
            # its slot until the plugin's own socket timeouts end it, so that no more than
            # `concurrency` sends ever run.
            if future.done():
                self._slots.release()
            else:
                future.add_done_callback(release)
