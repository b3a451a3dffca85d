"""`alerts demo` as a newcomer runs it: a subprocess that prints alerts within 30 s, serves
the API it names in its banner, sends to an Apprise URL given, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def _receiver() -> tuple[ThreadingHTTPServer, list[dict[str, str]]]:
    received: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def test_demo_prints_alerts_within_30_seconds_and_stops_on_ctrl_c() -> None:
    server, received = _receiver()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "alerts.cli", "demo", "--port", "0", "--apprise",
         f"json://127.0.0.1:{server.server_address[1]}/hook"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "DATABASE_URL": "sqlite:///should-not-be-used.db"},
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    try:
        while not any(" ALERT #" in line for line in lines):
            assert time.monotonic() - started < 30, "no alert within 30 s:\n" + "".join(lines)
            ready, _, _ = select.select([process.stdout], [], [], 1.0)
            if ready:
                line = process.stdout.readline()
                assert line, "the demo exited:\n" + "".join(lines) + process.stderr.read()
                lines.append(line)
        print(f"first alert {time.monotonic() - started:.1f} s after start: {lines[-1]}")
        output = "".join(lines)
        assert "xRocket alerts demo" in output and "price_cross" in output
        api = re.search(r"REST API\s+(http://\S+)", output)
        key = re.search(r"API key\s+(\S+)", output)
        assert api and key
        r = httpx.get(f"{api[1]}/v1/rules", headers={"Authorization": f"Bearer {key[1]}"})
        kinds = {rule["kind"] for rule in r.json()["items"]}
        assert len(kinds) == 8  # an example of every kind
        assert httpx.get(f"{api[1]}/docs").status_code == 200
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert received and received[0]["message"]  # the Apprise URL got an alert too
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=20)
        server.shutdown()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert not (ROOT / "should-not-be-used.db").exists()
