"""One Apprise send, as a thread runs it: the URL's plugin (parsed once, then kept), emojis if
the URL asks for them, the blocking `notify()`, and the warnings Apprise logged meanwhile.

The same function runs in the notifier's own threads and in its helper processes
(`alerts.delivery.apprise_processes`), so both say the same thing about a send.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any, Literal

import apprise
from apprise.emojis import apply_emojis

from alerts.delivery.address_guard import guarded
from alerts.delivery.apprise_urls import captured_apprise_logs

# sent / failed: `detail` lists the warnings Apprise logged; unusable: Apprise cannot use the
# URL; crashed: the plugin raised, `detail` names the exception's type (its message may quote
# the URL); refused: it tried to reach an address that is not allowed (see address_guard).
Status = Literal["sent", "failed", "unusable", "crashed", "refused"]
Result = tuple[Status, list[str]]


class Plugins:
    """The plugin object of each recent URL: parsing a URL costs more than many sends."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._plugins: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str) -> Any | None:
        """The URL's plugin, or None when Apprise cannot use the URL."""
        with self._lock:
            plugin = self._plugins.get(url)
            if plugin is not None:
                self._plugins.move_to_end(url)
                return plugin
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
        if plugin is not None:
            with self._lock:
                self._plugins[url] = plugin
                if len(self._plugins) > self._size:
                    self._plugins.popitem(last=False)
        return plugin


def notify(plugins: Plugins, url: str, body: str, title: str, *, allow_private: bool) -> Result:
    """Send once (blocking), every connection checked by the address guard; what happened,
    and Apprise's warnings about it."""
    with captured_apprise_logs() as records, guarded(allow_private=allow_private) as guard:
        plugin = plugins.get(url)
        if plugin is None:
            return "unusable", []
        if plugin.interpret_emojis:
            body, title = apply_emojis(body), apply_emojis(title)  # type: ignore[no-untyped-call]
        try:
            ok = plugin.notify(body=body, title=title)
        except Exception as exc:  # noqa: BLE001  (a plugin may raise anything)
            if not guard.refused:
                return "crashed", [type(exc).__name__]
            ok = False
    if guard.refused:  # the plugin saw a failed connection; this is why
        return "refused", []
    problems = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    return ("sent" if ok else "failed"), problems
