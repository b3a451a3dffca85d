"""Apprise URLs: parse, restrict by scheme, mask; and keep Apprise's own logs off our logs.

Apprise logs unparseable URLs, short tokens unmasked, at ERROR. Its records therefore never
reach a handler: they go to a per-call capture (for delivery records, after scrubbing) or
nowhere.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import apprise

_SCHEME_RE = re.compile(r"^([a-z][a-z0-9+.-]{0,31})://", re.IGNORECASE)
_captured: ContextVar[list[logging.LogRecord] | None] = ContextVar("apprise_logs", default=None)


class _Divert(logging.Filter):
    """Hands each Apprise record to the current capture, then drops it, so that no handler
    (ours, the operator's, a test harness's) ever formats an Apprise message."""

    def filter(self, record: logging.LogRecord) -> bool:
        sink = _captured.get()
        if sink is not None:
            sink.append(record)
        return False


_apprise_logger = logging.getLogger("apprise")
_apprise_logger.propagate = False
# Only warnings and errors carry a failure's reason; below that, not even a record is made
# (a plugin logs at INFO on every send, from the sending threads).
_apprise_logger.setLevel(logging.WARNING)
_apprise_logger.addFilter(_Divert())


@contextmanager
def captured_apprise_logs() -> Iterator[list[logging.LogRecord]]:
    """Collect what Apprise logs inside the block (in this task or thread only)."""
    records: list[logging.LogRecord] = []
    token = _captured.set(records)
    try:
        yield records
    finally:
        _captured.reset(token)


class AppriseUrlError(ValueError):
    """An Apprise URL the service will not use; the message never repeats the URL."""


@dataclass(frozen=True)
class AppriseTarget:
    """What a valid URL tells us: its scheme, its service's name, and its masked form."""

    scheme: str
    service: str
    masked: str


def parse_schemes(value: str | None) -> frozenset[str] | None:
    """The allowed-schemes setting: comma-separated, case-insensitive; blank allows all."""
    if not value or not value.strip():
        return None
    return frozenset(part.strip().lower() for part in value.split(",") if part.strip())


def check_apprise_url(url: str, allowed: frozenset[str] | None = None) -> AppriseTarget:
    """Validate `url` as Apprise would load it, or raise `AppriseUrlError`."""
    match = _SCHEME_RE.match(url.strip())
    if match is None:
        raise AppriseUrlError(
            'an Apprise URL looks like scheme://..., e.g. "discord://webhook_id/webhook_token"'
        )
    scheme = match.group(1).lower()
    if allowed is not None and scheme not in allowed:
        raise AppriseUrlError(
            f"{scheme}:// URLs are not allowed on this service; allowed: "
            + ", ".join(sorted(allowed))
        )
    with captured_apprise_logs():
        plugin = apprise.Apprise.instantiate(url.strip(), suppress_exceptions=True)
    if plugin is None:
        raise AppriseUrlError(
            f"Apprise cannot use this {scheme}:// URL; check its format at "
            "https://github.com/caronc/apprise/wiki"
        )
    return AppriseTarget(
        scheme=scheme,
        service=str(plugin.service_name),
        masked=str(plugin.url(privacy=True)),  # type: ignore[no-untyped-call]
    )
