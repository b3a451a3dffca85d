"""Keep user-given notification URLs from reaching the server's own network (SSRF).

A send runs an Apprise plugin: `requests`, `smtplib`, raw sockets, whatever the plugin uses, in
a thread of this process or of a helper process. Checking the URL's host up front cannot be
enough: a name may resolve to 127.0.0.1 (or do so only on the second lookup: DNS rebinding), and
a public server may answer with a redirect to a private one. So the check is made on the address
each socket actually connects (or sends) to, at that moment, by one process-wide
`sys.addaudithook` hook: CPython raises the `socket.connect` audit event (also for `connect_ex`),
`socket.sendto` and `socket.sendmsg` with the final, already resolved address, whichever library
made the call, and an exception raised by the hook aborts the call before the system call.

The hook sees every audited event of the process, so it returns at once for the events it does
not care about, and for any code not inside `guarded(...)`: a context variable marks what runs
a send (a thread running a plugin, or an asyncio task sending a webhook, and the tasks it
starts meanwhile); the rest of the service, other tasks on the same loop included, is left
alone. Inside a guarded block:

- an AF_INET/AF_INET6 address must be a numeric IP and `address_allowed`: libraries resolve
  before they connect, and resolving a name again here would reopen the rebinding race, so a
  name is refused; AF_UNIX and any other family are refused (a local socket, such as Docker's,
  is the server itself). `allow_private` (the operator's ALERTS_ALLOW_PRIVATE_TARGETS) lifts
  these address checks, local sockets included;
- creating a process (`subprocess`, `os.system`, `os.exec*`, `os.posix_spawn*`, `os.spawn*`,
  `os.fork`, `os.forkpty`) is refused: a plugin must never run a program on the server, and a
  child process would escape the guard.

Libraries often swallow the error (requests wraps it, Apprise only logs it), so each refusal is
also recorded on the `Guard` the block yields, for the caller to report "address not allowed".
`literal_host_refused` is only the early, friendlier check made when a URL is saved.

Limits: only Python-level sockets are seen (a C library opening its own sockets is not), and
threads a send starts itself are not guarded (CPython 3.11 audits no thread creation).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_SHARED_V4 = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # well-known prefix: the last 32 bits are a v4
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # local-use (RFC 8215): never public
_V4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated, includes :: and ::1

_SOCKET_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork"}
    | {"os.forkpty", "os.startfile"}
)
_EVENTS = _SOCKET_EVENTS | _PROCESS_EVENTS
_LEGACY_V4 = re.compile(r"[0-9a-fx.]+")  # what inet_aton might read as an IPv4 address
_IDNA_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


class AddressNotAllowed(PermissionError):
    """A guarded send tried to reach an address it must not (or to start a process)."""

    def __init__(self) -> None:
        super().__init__("address not allowed")


@dataclass
class Guard:
    """One `guarded` block: its effective policy, and whether it refused anything."""

    allow_private: bool
    also_allow: frozenset[tuple[str, int]] = field(default_factory=frozenset)
    refused: bool = False


def _public(a: _Address) -> bool:
    """What both families check: `is_global` alone lets multicast (and v6 site-local) through."""
    special = a.is_multicast or a.is_private or a.is_loopback or a.is_link_local
    return a.is_global and not (special or a.is_reserved or a.is_unspecified)


def _v4_allowed(a: ipaddress.IPv4Address) -> bool:
    return _public(a) and a not in _SHARED_V4


def _allowed(a: _Address) -> bool:
    if isinstance(a, ipaddress.IPv4Address):
        return _v4_allowed(a)
    if a.ipv4_mapped is not None:
        return _v4_allowed(a.ipv4_mapped)
    if a in _NAT64:
        return _v4_allowed(ipaddress.IPv4Address(int(a) & 0xFFFFFFFF))
    if a in _NAT64_LOCAL or a in _V4_COMPATIBLE:
        return False
    if a.sixtofour is not None and not _v4_allowed(a.sixtofour):
        return False
    if a.teredo is not None and not all(_v4_allowed(v4) for v4 in a.teredo):
        return False
    return _public(a) and not a.is_site_local


def address_allowed(ip: str) -> bool:
    """True only for a public, globally routable unicast IP (v4 or v6, maybe with `%scope`)."""
    try:
        return _allowed(ipaddress.ip_address(ip.partition("%")[0]))
    except ValueError:
        return False


def literal_host_refused(host: str) -> bool:
    """True when a URL's host is a local name or an IP literal that is not allowed.

    DNS names give False: they are checked when connected to.
    """
    name = host.strip().translate(_IDNA_DOTS).lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in ("localhost", "localhost.localdomain") or name.endswith(".localhost"):
        return True
    literal = name.partition("%")[0]
    try:
        return not _allowed(ipaddress.ip_address(literal))
    except ValueError:
        pass
    if _LEGACY_V4.fullmatch(literal):  # 2130706433, 0x7f000001, 0177.0.0.1, 127.1
        try:
            return not _allowed(ipaddress.IPv4Address(socket.inet_aton(literal)))
        except OSError:
            pass
    return False


# The open `Guard`s of the running thread or task, innermost last.
_guards: ContextVar[tuple[Guard, ...]] = ContextVar("address_guards", default=())
_install_lock = threading.Lock()
_installed = False


def _address_refused(guard: Guard, sock: Any, address: Any) -> bool:
    if guard.allow_private:
        return False
    family = getattr(sock, "family", None)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return True
    if not isinstance(address, tuple) or len(address) < 2 or not isinstance(address[0], str):
        return True
    host, port = address[0], address[1]
    try:
        ip = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return True  # a name: resolving it here would reopen the rebinding race
    return not (_allowed(ip) or (str(ip), port) in guard.also_allow)


def _hook(event: str, args: tuple[Any, ...], _events: frozenset[str] = _EVENTS) -> None:
    if event not in _events:
        return
    guards = _guards.get()
    if not guards:
        return
    if event in _SOCKET_EVENTS:
        if event == "socket.sendmsg" and args[1] is None:
            return  # no address: a connected socket, already checked at connect
        if not _address_refused(guards[-1], args[0], args[1]):
            return
    for guard in guards:
        guard.refused = True
    raise AddressNotAllowed


def install() -> None:
    """Install the process-wide audit hook, once (audit hooks cannot be removed)."""
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_hook)
            _installed = True


@contextmanager
def guarded(
    *, allow_private: bool, also_allow: frozenset[tuple[str, int]] = frozenset()
) -> Iterator[Guard]:
    """Guard the connections made in the block (by this thread, or this asyncio task and the
    tasks it starts meanwhile); a nested block can only tighten."""
    install()
    guards = _guards.get()
    outer = guards[-1] if guards else None
    guard = Guard(allow_private, also_allow)
    if outer is not None:
        guard.allow_private = allow_private and outer.allow_private
        guard.also_allow = also_allow & outer.also_allow
    token = _guards.set((*guards, guard))
    try:
        yield guard
    finally:
        _guards.reset(token)
