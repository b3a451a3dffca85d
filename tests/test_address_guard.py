"""The SSRF guard, against real sockets and servers on this machine (nothing is mocked)."""

from __future__ import annotations

import http.server
import os
import smtplib
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import apprise
import pytest
import requests

from alerts.delivery.address_guard import (
    AddressNotAllowed,
    address_allowed,
    guarded,
    literal_host_refused,
)

REFUSED = [
    "127.0.0.1",
    "127.255.255.254",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",  # noqa: S104
    "224.0.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "198.18.0.1",
    "203.0.113.7",
    "::1",
    "::",
    "::7f00:1",
    "fe80::1",
    "fe80::1%eth0",
    "fec0::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "ff0e::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "::ffff:169.254.169.254",
    "2002:7f00:1::1",
    "2002:a00:1::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",
    "64:ff9b:1::808:808",
    "2001:db8::1",
    "",
    "localhost",
    "not an address",
    "127.1",
]
ALLOWED = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


@pytest.mark.parametrize("ip", REFUSED)
def test_address_refused(ip: str) -> None:
    assert not address_allowed(ip)


@pytest.mark.parametrize("ip", ALLOWED)
def test_address_allowed(ip: str) -> None:
    assert address_allowed(ip)


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("127.0.0.1", True),
        ("2130706433", True),
        ("0x7f000001", True),
        ("0177.0.0.1", True),
        ("127.1", True),
        ("0", True),
        ("0x0a.1", True),
        ("10.0.0.1", True),
        ("169.254.169.254", True),
        ("[::1]", True),
        ("::1", True),
        ("[::ffff:127.0.0.1]", True),
        ("[fe80::1%25eth0]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("foo.localhost", True),
        ("localhost.localdomain", True),
        ("127\u30020\u30020\u30021", True),
        ("example.com", False),
        ("cafe.be", False),
        ("localhost.example.com", False),
        ("8.8.8.8", False),
        ("134744072", False),
        ("[2606:4700:4700::1111]", False),
    ],
)
def test_literal_host_refused(host: str, refused: bool) -> None:
    assert literal_host_refused(host) is refused


class _Server(http.server.ThreadingHTTPServer):
    """Counts the connections it accepts and the requests it answers."""

    daemon_threads = True

    def __init__(self, redirect_to: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.requests: list[str] = []
        self.redirect_to = redirect_to

    def get_request(self) -> tuple[socket.socket, object]:
        got = super().get_request()
        self.connections += 1
        return got

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server

    def _answer(self) -> None:
        self.server.requests.append(self.path)
        if self.server.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.server.redirect_to)
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


Serve = Callable[..., _Server]


@pytest.fixture
def serve() -> Iterator[Serve]:
    started: list[_Server] = []

    def start(redirect_to: str | None = None) -> _Server:
        server = _Server(redirect_to)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def _get(url: str) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment
        return session.get(url, timeout=5)


def test_requests_refused_inside_guard(serve: Serve) -> None:
    server = serve()
    with (
        guarded(allow_private=False) as guard,
        pytest.raises(requests.ConnectionError, match="address not allowed"),
    ):
        _get(server.url)
    assert guard.refused
    assert server.requests == []
    assert _get(server.url).status_code == 200  # served in order: this is the first connection
    assert server.connections == 1


def test_requests_allowed_with_private_targets_and_outside(serve: Serve) -> None:
    server = serve()
    with guarded(allow_private=True) as guard:
        assert _get(server.url).status_code == 200
    assert not guard.refused
    assert _get(server.url).status_code == 200
    assert server.requests == ["/", "/"]


def test_apprise_plugin_refused(serve: Serve) -> None:
    server = serve()
    plugin = apprise.Apprise.instantiate(f"json://127.0.0.1:{server.port}/")
    assert plugin is not None
    with guarded(allow_private=False) as guard:
        assert plugin.notify(body="b", title="t") is False
    assert guard.refused
    assert server.connections == 0
    with guarded(allow_private=True) as guard:
        assert plugin.notify(body="b", title="t") is True
    assert not guard.refused


def _local_name() -> str:
    name = socket.gethostname()
    try:
        ips = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    except OSError:
        return "localhost"
    return name if ips and not any(address_allowed(str(ip)) for ip in ips) else "localhost"


def test_name_resolving_to_local_address_refused_at_connect(serve: Serve) -> None:
    server = serve()
    name = _local_name()
    assert not literal_host_refused(name) or name == "localhost"
    with guarded(allow_private=False) as guard, pytest.raises(requests.ConnectionError):
        _get(f"http://{name}:{server.port}/")
    assert guard.refused
    assert server.connections == 0


def test_redirect_to_private_server_refused(serve: Serve) -> None:
    private = serve()
    public = serve(redirect_to=private.url + "secret")
    seam = frozenset({("127.0.0.1", public.port)})
    with (
        guarded(allow_private=False, also_allow=seam) as guard,
        pytest.raises(requests.ConnectionError, match="address not allowed"),
    ):
        _get(public.url)
    assert guard.refused
    assert public.requests == ["/"]
    assert private.requests == []
    assert private.connections == 0


def test_socket_given_a_name_refused_unless_private_allowed() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with guarded(allow_private=False), socket.socket() as sock:
            with pytest.raises(AddressNotAllowed):
                sock.connect(("localhost", port))
            with pytest.raises(AddressNotAllowed):
                sock.connect_ex(("127.0.0.1", port))
        with guarded(allow_private=True), socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6")
@pytest.mark.parametrize("ip", ["::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"])
def test_ipv6_connect_refused(ip: str) -> None:
    with (
        guarded(allow_private=False) as guard,
        socket.socket(socket.AF_INET6) as sock,
        pytest.raises(AddressNotAllowed),
    ):
        sock.connect((ip, 9, 0, 0))
    assert guard.refused


def test_smtp_refused() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(0.2)
        with (
            guarded(allow_private=False) as guard,
            pytest.raises(AddressNotAllowed, match=r"^address not allowed$"),
        ):
            smtplib.SMTP("127.0.0.1", listener.getsockname()[1], timeout=5)
        assert guard.refused
        with pytest.raises(TimeoutError):
            listener.accept()


def test_udp_sendto_and_sendmsg_refused() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(0.2)
        target = receiver.getsockname()
        with guarded(allow_private=False) as guard:
            with pytest.raises(AddressNotAllowed):
                sender.sendto(b"x", target)
            with pytest.raises(AddressNotAllowed):
                sender.sendmsg([b"x"], [], 0, target)
        assert guard.refused
        with pytest.raises(TimeoutError):
            receiver.recv(10)
        sender.sendto(b"ok", target)
        assert receiver.recv(10) == b"ok"


def test_unix_socket_refused_unless_private_targets_are_allowed(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        with (
            guarded(allow_private=False) as guard,
            socket.socket(socket.AF_UNIX) as c,
            pytest.raises(AddressNotAllowed),
        ):
            c.connect(path)
        assert guard.refused
        with guarded(allow_private=True) as guard, socket.socket(socket.AF_UNIX) as c:
            c.connect(path)
        assert not guard.refused
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(path)


def test_subprocess_refused_even_with_private_targets() -> None:
    with guarded(allow_private=True) as guard, pytest.raises(AddressNotAllowed):
        subprocess.run(["true"], check=False)  # noqa: S607
    assert guard.refused
    assert subprocess.run(["true"], check=False).returncode == 0  # noqa: S607


def test_every_way_to_start_a_process_refused() -> None:
    # In a child interpreter: if a refusal failed, os.fork or os.execv would act on pytest itself.
    script = textwrap.dedent(
        """
        import os, pty, subprocess
        from alerts.delivery.address_guard import AddressNotAllowed, guarded
        ways = {
            "os.system": lambda: os.system("true"),
            "os.fork": os.fork,
            "os.forkpty": os.forkpty,
            "pty.fork": pty.fork,
            "os.posix_spawn": lambda: os.posix_spawn("/bin/true", ["true"], {}),
            "os.posix_spawnp": lambda: os.posix_spawnp("true", ["true"], {}),
            "os.spawnv": lambda: os.spawnv(os.P_WAIT, "/bin/true", ["true"]),
            "os.popen": lambda: os.popen("true"),
            "subprocess.run": lambda: subprocess.run(["true"]),
            "os.execv": lambda: os.execv("/bin/true", ["true"]),
        }
        for name, start in ways.items():
            with guarded(allow_private=True):
                try:
                    start()
                except AddressNotAllowed:
                    print(name, flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=Path(__file__).parent.parent,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    assert done.stderr == ""
    assert done.stdout.split("\n")[:-1] == [
        "os.system",
        "os.fork",
        "os.forkpty",
        "pty.fork",
        "os.posix_spawn",
        "os.posix_spawnp",
        "os.spawnv",
        "os.popen",
        "subprocess.run",
        "os.execv",
    ]


def test_guard_does_not_leak_to_other_threads(serve: Serve) -> None:
    server = serve()
    with guarded(allow_private=False) as guard, ThreadPoolExecutor(2) as pool:
        assert pool.submit(lambda: _get(server.url).status_code).result() == 200
        with pytest.raises(requests.ConnectionError):
            _get(server.url)
    assert guard.refused

    inside, go_on = threading.Event(), threading.Event()
    seen: list[object] = []

    def guarded_thread() -> None:
        with guarded(allow_private=False) as guard:
            inside.set()
            go_on.wait(5)
            try:
                _get(server.url)
            except requests.ConnectionError:
                seen.append(guard.refused)

    thread = threading.Thread(target=guarded_thread)
    thread.start()
    assert inside.wait(5)
    assert _get(server.url).status_code == 200  # this thread, while the other is guarded
    go_on.set()
    thread.join(5)
    assert seen == [True]
    assert server.requests == ["/", "/"]


def test_nested_guards_only_tighten_and_restore(serve: Serve) -> None:
    server = serve()
    with guarded(allow_private=False) as outer:
        with guarded(allow_private=True) as inner, pytest.raises(requests.ConnectionError):
            _get(server.url)
        assert inner.refused and outer.refused
        with pytest.raises(requests.ConnectionError):
            _get(server.url)
    with guarded(allow_private=True) as outer:
        with guarded(allow_private=True):
            pass
        assert _get(server.url).status_code == 200
        with pytest.raises(AddressNotAllowed), guarded(allow_private=True):
            raise AddressNotAllowed
        assert _get(server.url).status_code == 200
    assert not outer.refused
    assert _get(server.url).status_code == 200
    assert server.connections == 3
