"""Checking a webhook's URL when it is saved: http or https, a host, no credentials in it,
and (unless the operator allows private targets) no local or private address named
literally; a name that leads to one is refused when connected to (`address_guard`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from alerts.delivery.address_guard import literal_host_refused

MAX_URL = 2048


class WebhookUrlError(ValueError):
    """A webhook URL the service will not save, with the reason."""


def check_webhook_url(url: str, *, allow_private: bool) -> str:
    """The URL, stripped, once valid; raises `WebhookUrlError` saying what is wrong."""
    text = url.strip()
    if len(text) > MAX_URL:
        raise WebhookUrlError(f"a webhook URL is at most {MAX_URL} characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise WebhookUrlError("not a valid URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise WebhookUrlError("a webhook URL starts with https:// (or http://)")
    if not parts.hostname:
        raise WebhookUrlError("a webhook URL names a host, e.g. https://example.com/hook")
    if parts.username is not None or parts.password is not None:
        raise WebhookUrlError(
            "put no credentials in a webhook URL: sign the requests with a secret instead"
        )
    if any(c.isspace() or ord(c) < 32 for c in text):
        raise WebhookUrlError("a webhook URL has no spaces or control characters")
    if port == 0:
        raise WebhookUrlError("port 0 is not a port")
    if not allow_private and literal_host_refused(parts.hostname):
        raise WebhookUrlError(
            "address not allowed: this service does not send to local or private network "
            "addresses (its operator can allow them with ALERTS_ALLOW_PRIVATE_TARGETS)"
        )
    return text
