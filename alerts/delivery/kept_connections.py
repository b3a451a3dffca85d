"""Kept-alive connections for the Apprise sends of a helper process.

Apprise's HTTP plugins call `requests.post(...)` / `requests.request(...)`, and those open a
`requests.Session` for the one call (its adapters, a pool manager, a new connection) and close
it after: half of a webhook send's CPU (1.0 of 2.1 ms on the benchmark's VM). `keep()` makes
those module functions use one session per thread instead, so the thread's next send to the
same host reuses its connection. Only the helper processes call it: they run nothing else.

A session kept from one send to the next must carry nothing from one to the other but the
connections: its cookies are dropped after every call (as a one-call session's are; a redirect
chain within a call still sees them), and everything else a plugin gives (headers, auth,
proxies, verify, timeout) is per request. A kept connection was checked by the address guard
when it was opened; every new one is checked as before. A connection the server has closed
meanwhile is noticed by urllib3 before it is reused, and a new one is opened.
"""

from __future__ import annotations

import threading
from typing import Any

import requests
import requests.api

_local = threading.local()


def _session() -> requests.Session:
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


def request(method: str, url: str, **kwargs: Any) -> requests.Response:
    """`requests.request`, on this thread's kept session."""
    session = _session()
    try:
        return session.request(method=method, url=url, **kwargs)
    finally:
        session.cookies.clear()


def keep() -> None:
    """Route `requests.request` and `requests.get/post/put/…` (which call
    `requests.api.request`) through `request`."""
    requests.request = requests.api.request = request  # type: ignore[assignment]
