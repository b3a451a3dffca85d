"""Apprise URLs: parse, restrict by scheme and address, mask; and keep Apprise's own logs off
our logs.

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
from functools import cache
from urllib.parse import parse_qs, urlsplit

import apprise

from alerts.delivery.address_guard import literal_host_refused
from alerts.delivery.apprise_mask import mask_apprise_url

# ALERTS_APPRISE_SCHEMES unset: hosted services, generic webhooks and the chat servers people
# host themselves. Each reaches only the address its URL names, which the address guard
# checks on every connection (see alerts.delivery.address_guard).
DEFAULT_SCHEMES = frozenset(
    {
        # generic webhooks
        "json", "jsons", "form", "forms", "xml", "xmls",
        # chat and team messengers
        "discord", "slack", "tgram", "workflow", "workflows", "gchat", "zulip", "mmost",
        "mmosts", "rocket", "rockets", "matrix", "matrixs", "wxteams", "webex", "lark",
        "feishu", "dingtalk", "wecombot", "line", "signal", "signals", "nctalk", "nctalks",
        "revolt", "guilded", "ryver", "flock", "twist", "cliq",
        # push services
        "ntfy", "ntfys", "gotify", "gotifys", "pover", "pbul", "psafer", "psafers", "prowl",
        "join", "pushed", "spush", "simplepush", "pushy", "pjet", "pjets", "bark", "barks",
        "apprise", "apprises", "ifttt", "fcm", "onesignal", "pushme", "chanify",
        # incident management
        "pagerduty", "opsgenie", "pagertree", "splunk", "victorops", "signl4", "ilert",
        "squadcast", "betterstack", "incidentio",
        # e-mail and SMS gateways
        "mailto", "mailtos", "ses", "sendgrid", "mailgun", "sparkpost", "postmark", "resend",
        "brevo", "smtp2go", "sns", "twilio", "vonage", "nexmo", "plivo", "sinch", "clicksend",
        "d7sms", "bulksms", "msgbird", "telnyx", "infobip",
    }
)  # fmt: skip
# Schemes that act on the server itself (its logs, its desktop, its devices, its programs):
# never allowed unless the operator names them in ALERTS_APPRISE_SCHEMES.
LOCAL_SCHEMES = frozenset(
    {
        "syslog", "rsyslog", "windows", "macosx", "dbus", "kde", "qt", "glib", "gio", "gnome",
        "growl", "blink1", "kodi", "kodis", "xbmc", "xbmcs", "enigma2", "enigma2s", "emby",
        "embys", "jellyfin", "jellyfins", "lametric", "lametrics", "mqtt", "mqtts", "amqp",
        "amqps", "smpp", "smpps", "file", "script",
    }
)  # fmt: skip

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
    """The allowed-schemes setting (comma-separated, case-insensitive): blank is the built-in
    list, `default` in it stands for that list, `*` allows every scheme (None)."""
    if not value or not value.strip():
        return DEFAULT_SCHEMES
    words = {part.strip().lower() for part in value.split(",") if part.strip()}
    if "*" in words:
        return None
    if "default" in words:
        words = (words - {"default"}) | DEFAULT_SCHEMES
    return frozenset(words)


def _unusable(scheme: str) -> str:
    return (
        f"Apprise cannot use this {scheme}:// URL; check its format at "
        "https://github.com/caronc/apprise/wiki"
    )


@cache
def known_schemes() -> frozenset[str]:
    """Every scheme the installed Apprise has a plugin for."""
    schemes: set[str] = set()
    for plugin in apprise.Apprise().details(show_disabled=True)["schemas"]:
        for key in ("protocols", "secure_protocols"):
            schemes.update(str(p).lower() for p in plugin.get(key) or ())
    return frozenset(schemes)


def _local_literal(host: str) -> bool:
    # A bare number is an id for many services (Discord's webhook id is the URL's "host"),
    # not an address; a number that is one is refused when connected to.
    return ("." in host or ":" in host or "localhost" in host.lower()) and literal_host_refused(
        host
    )


@dataclass(frozen=True)
class UrlPolicy:
    """Which Apprise URLs users may save: their schemes (None: any) and whether they may name
    local or private addresses (ALERTS_APPRISE_SCHEMES, ALERTS_ALLOW_PRIVATE_TARGETS)."""

    schemes: frozenset[str] | None = DEFAULT_SCHEMES
    allow_private: bool = False


_HOST_PARAMS = ("smtp", "host", "server")


def _named_hosts(url: str, plugin: object) -> set[str]:
    hosts = {getattr(plugin, "host", None)}
    try:
        parts = urlsplit(url)
        hosts.add(parts.hostname)
        query = parse_qs(parts.query)
    except ValueError:
        return {h for h in hosts if isinstance(h, str) and h}
    hosts.update(v for key in _HOST_PARAMS for v in query.get(key, []))
    return {h for h in hosts if isinstance(h, str) and h}


def check_apprise_url(url: str, policy: UrlPolicy) -> AppriseTarget:
    """Validate `url` as Apprise would load it and as `policy` allows, or raise
    `AppriseUrlError`. A URL naming a local or private address literally is refused here
    (unless allowed); one that gets there by a name is refused when connected to."""
    match = _SCHEME_RE.match(url.strip())
    if match is None:
        raise AppriseUrlError(
            'an Apprise URL looks like scheme://..., e.g. "discord://webhook_id/webhook_token"'
        )
    scheme = match.group(1).lower()
    if scheme not in known_schemes():
        raise AppriseUrlError(_unusable(scheme))
    allowed = policy.schemes
    if allowed is not None and scheme not in allowed:
        listed = ", ".join(sorted(allowed)) if len(allowed) <= 20 else ""
        raise AppriseUrlError(
            f"{scheme}:// URLs are not allowed on this service"
            + (f"; allowed: {listed}" if listed else " (its operator chooses which services are)")
        )
    with captured_apprise_logs():
        plugin = apprise.Apprise.instantiate(url.strip(), suppress_exceptions=True)
    if plugin is None:
        raise AppriseUrlError(_unusable(scheme))
    if not policy.allow_private and any(_local_literal(h) for h in _named_hosts(url, plugin)):
        raise AppriseUrlError(
            "address not allowed: this service does not send to local or private network "
            "addresses (its operator can allow them with ALERTS_ALLOW_PRIVATE_TARGETS)"
        )
    return AppriseTarget(
        scheme=scheme, service=str(plugin.service_name), masked=mask_apprise_url(url)
    )
