"""Masked Apprise URLs: what the service shows back instead of a stored destination URL.

Apprise's own `plugin.url(privacy=True)` leaks `+header`, `-query` and `:payload` values and
some query-string tokens, and needs the URL to load as a plugin. This masker uses only the
standard library: it splits the URL as Apprise does (scheme, user:password@host:port, path
segments, `&`/`;` query) and masks each part by its position, its query key and its look.

Kept: the scheme; a host that is a DNS name (dotted, alphabetic top label), an IP literal or
`localhost`; the port; user names, path segments, query keys and values that do not look like
tokens (so `#channel`, ntfy topics, `format=markdown`, and recipients such as `to=a@b.c`,
e-mail and phone targets stay readable). Masked: passwords; any other host (Discord ids, bot
tokens, access keys sit there); every part that looks like a token; every value of a `+`, `-`
or `:` key (also percent-encoded) and of a key naming a secret (token, key, pass, auth, user,
from, ...). A masked secret keeps its first and last character (`w...d`) when it has at least
8 characters, else it becomes `***`. Masked forms, also Apprise's (`w...d`, `****`), are kept
as they are, so masking is idempotent. It never raises: what it cannot split becomes
`scheme://***` (or `***`). Work is bounded: input is cut at 8192 characters (the cut part is
masked), parts longer than 64 characters are masked, and after 32 path segments or query
parameters the rest becomes `...`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from urllib.parse import unquote

_MAX_INPUT = 8192
_MAX_PARTS = 32
_MAX_PLAIN = 64
_CUT = "\x00"  # appended where the input was cut: a control character, so that part is masked

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_MASKED = re.compile(r"[^.]?\.\.\.[^.]?|\*+")
_SECRET_KEY = re.compile(
    r"token|key|secret|pass|pwd|auth|sig|cred|session|cookie|webhook|access|private|bearer"
    r"|user|login|account|from|^(?:sid|pin|otp|code|hash)$"
)
_LONG_RUN = re.compile(r"[A-Za-z0-9_-]{16,}")
_WORDS = re.compile(r"(?:[a-z]{1,12}|[0-9]{1,4})(?:[-_](?:[a-z]{1,12}|[0-9]{1,4}))*")
_ALNUM_RUN = re.compile(r"[A-Za-z0-9]{8,}")
_CAMEL = re.compile(r"[A-Z]?[a-z]+(?:[A-Z][a-z]{2,})*|[A-Z]+")
_IPV4 = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")
_LABEL = re.compile(r"[^\W_](?:[\w-]{0,61}[^\W_])?")
_PORT = re.compile(r":[0-9]{0,5}")
_PARAM_SEP = re.compile(r"([&;])")


def mask_apprise_url(url: str) -> str:
    """The URL with every secret masked, keeping enough to recognise the target."""
    try:
        return _mask(url)
    except Exception:  # noqa: BLE001 - a bug here must not leak the URL nor fail a read
        match = _SCHEME.match(url.strip()) if isinstance(url, str) else None
        return f"{match.group(1).lower()}://***" if match else "***"


def _mask(url: str) -> str:
    text = url.strip()
    if len(text) > _MAX_INPUT:
        text = text[:_MAX_INPUT] + _CUT
    match = _SCHEME.match(text)
    if match is None:
        return "***"
    scheme = match.group(1).lower()
    before, qmark, query = text[match.end() :].partition("?")
    authority, slash, path = before.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if not at and "@" in path and ":" in authority and not re.search(r":[0-9]*$", authority):
        return f"{scheme}://***"  # user:pass/word@host: where the password ends is a guess
    out = f"{scheme}://"
    if at:
        user, colon, password = userinfo.partition(":")
        out += f"{_part(user)}{colon}{_part(password, force=True)}@"
    out += _host(hostport)
    if slash:
        segments = path.split("/", _MAX_PARTS)
        if len(segments) > _MAX_PARTS:
            segments[-1] = "..."
        out += "/" + "/".join(_part(segment) for segment in segments)
    if qmark:
        pieces = _PARAM_SEP.split(query, maxsplit=_MAX_PARTS)
        if len(pieces) > 2 * _MAX_PARTS:
            pieces[-1] = "..."
        out += "?" + "".join(p if i % 2 else _param(p) for i, p in enumerate(pieces))
    return out


def _host(hostport: str) -> str:
    host, port = hostport, ""
    if hostport.startswith("["):
        end = hostport.find("]") + 1
        if end:
            host, port = hostport[:end], hostport[end:]
    elif ":" in hostport:
        colon = hostport.rfind(":")
        host, port = hostport[:colon], hostport[colon:]
    if port and not _PORT.fullmatch(port):
        host, port = hostport, ""  # `123456789:AAH...` is a bot token, not host:port
    return (host if _visible_host(host) else _part(host, force=True)) + port


def _visible_host(host: str) -> bool:
    if host.lower() == "localhost" or _IPV4.fullmatch(host) or _IPV6.fullmatch(host):
        return True
    labels = host.removesuffix(".").split(".")
    top = labels[-1]
    return (
        len(host) <= 253
        and len(labels) > 1
        and (top.isalpha() or top.lower().startswith("xn--"))
        and all(_LABEL.fullmatch(label) and not _secret_label(label) for label in labels)
    )


def _secret_label(label: str) -> bool:
    mixed_case = label.lower() != label and label.upper() != label
    return (mixed_case and len(label) >= 8) or (len(label) >= 20 and not label.isalpha())


def _param(raw: str) -> str:
    key, eq, value = raw.partition("=")
    name = _decode(key).strip()
    masked_key = _part(key)
    secret = (
        masked_key != key
        or name.startswith(("+", "-", ":"))
        or _SECRET_KEY.search(name.lstrip("+-:").lower()) is not None
    )
    return masked_key + eq + _part(value, force=secret)


def _part(raw: str, *, force: bool = False) -> str:
    """`raw` as is, or masked when `force`d, too long, or token-like; masked forms stay."""
    if not raw or _MASKED.fullmatch(raw):
        return raw
    text = _decode(raw)
    if force or len(raw) > _MAX_PLAIN or _looks_secret(text):
        return _hide(text)
    return raw


def _decode(raw: str) -> str:
    for _ in range(3):  # `%252B` is a `+` too, to whoever decodes it twice
        text = unquote(raw, errors="replace")
        if text == raw:
            break
        raw = text
    return raw


def _looks_secret(text: str) -> bool:
    if len(text) > _MAX_PLAIN or "..." in text or any(ord(c) < 32 or ord(c) == 127 for c in text):
        return True  # "...": a partly masked value (Apprise shows some as `...abcd`)
    if any(not _WORDS.fullmatch(run) for run in _LONG_RUN.findall(text)):
        return True
    for run in _ALNUM_RUN.findall(text):
        if not run.isdigit() and not run.isalpha():
            return True  # letters and digits
        if run.isalpha() and not _CAMEL.fullmatch(run):
            return True  # mixed case that is not CamelCase words
        if run.islower() and len(run) >= 10 and _random_letters(run):
            return True
    return False


def _random_letters(run: str) -> bool:
    """High Shannon entropy and few vowels: most random lowercase runs, few English words."""
    size = len(run)
    entropy = -sum(n / size * math.log2(n / size) for n in Counter(run).values())
    return entropy > 3.0 and sum(c in "aeiouy" for c in run) < 0.3 * size


def _hide(secret: str) -> str:
    if len(secret) < 8:
        return "***"
    return f"{_edge(secret[0])}...{_edge(secret[-1])}"


def _edge(char: str) -> str:
    return char if char.isascii() and char.isalnum() else "*"
