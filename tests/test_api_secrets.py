"""Exchange tokens and Apprise secrets appear in no response body and no log line."""

from __future__ import annotations

import logging

import pytest

from tests.api_helpers import BLOCKED_TOKEN, GOOD_TOKEN, OTHER_TOKEN, Api

UNKNOWN_TOKEN = "xrocket-token-SECRET-unknown-777777"
DISCORD = "discord://4321/SECRETWEBHOOKTOKEN-abcdef"
JSON_HOOK = "json://hookuser:SECRETPASSWORD-1234@hooks.example.com:9/path"
BAD_URL = "bogus://SECRETBOGUS-9999"
BAD_PLUGIN_URL = "discord://SECRETONLYID-5555"
SHORT_BAD_URL = "bogus://SECRETQ"  # Apprise masks long secrets in its logs, but not short ones
SECRETS = [
    GOOD_TOKEN,
    OTHER_TOKEN,
    BLOCKED_TOKEN,
    UNKNOWN_TOKEN,
    "SECRETWEBHOOKTOKEN",
    "SECRETPASSWORD",
    "SECRETBOGUS",
    "SECRETONLYID",
    "SECRETQ",
]
# The exchange's own logs are not ours: the simulator stands in for a server we do not run.
THIRD_PARTY = ("alerts.simulator", "websockets.server")


def test_secrets_never_reach_responses_or_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []

    def call(
        method: str, path: str, body: object = None, headers: dict[str, str] | None = None
    ) -> int:
        r = api.client.request(method, path, json=body, headers=headers)
        bodies.append(r.text)
        return r.status_code

    alice = api.user("alice", telegram_user_id=5)
    bob = api.user("bob")

    quiet = {"notify_orders": False, "notify_balances": False}  # rule 1 is the one made below
    assert (
        call("POST", "/v1/accounts", {"name": "main", "token": GOOD_TOKEN, **quiet}, alice) == 201
    )
    assert call("POST", "/v1/accounts", {"name": "x", "token": UNKNOWN_TOKEN}, alice) == 422
    assert call("POST", "/v1/accounts", {"name": "y", "token": BLOCKED_TOKEN}, alice) == 422
    assert call("POST", "/v1/accounts", {"name": "main", "token": OTHER_TOKEN}, alice) == 409
    assert call("POST", "/v1/accounts", {"name": "z", "token": GOOD_TOKEN * 200}, alice) == 422
    assert call("POST", "/v1/accounts", {"name": "", "token": GOOD_TOKEN}, alice) == 422
    assert call("POST", "/v1/accounts", {"token": GOOD_TOKEN, "extra": GOOD_TOKEN}, alice) == 422
    assert call("PATCH", "/v1/accounts/1", {"token": BLOCKED_TOKEN}, alice) == 422
    assert call("PATCH", "/v1/accounts/1", {"token": OTHER_TOKEN}, alice) == 200
    assert call("PATCH", "/v1/accounts/1", {"token": GOOD_TOKEN}, bob) == 404
    assert call("GET", "/v1/accounts", None, alice) == 200
    assert call("GET", "/v1/accounts/1", None, alice) == 200

    assert call("POST", "/v1/destinations", {"kind": "apprise", "url": DISCORD}, alice) == 201
    assert call("POST", "/v1/destinations", {"kind": "apprise", "url": JSON_HOOK}, alice) == 201
    assert call("POST", "/v1/destinations", {"kind": "apprise", "url": BAD_URL}, alice) == 422
    assert (
        call("POST", "/v1/destinations", {"kind": "apprise", "url": BAD_PLUGIN_URL}, alice) == 422
    )
    short = {"kind": "apprise", "url": SHORT_BAD_URL}
    assert call("POST", "/v1/destinations", short, alice) == 422
    assert call("POST", "/v1/destinations", {"kind": "telegram", "url": DISCORD}, alice) == 422
    assert call("PATCH", "/v1/destinations/1", {"url": BAD_URL}, alice) == 422
    assert call("PATCH", "/v1/destinations/2", {"url": DISCORD, "name": "again"}, alice) == 200
    assert call("PATCH", "/v1/destinations/1", {"url": DISCORD}, bob) == 404
    assert call("GET", "/v1/destinations", None, alice) == 200
    assert call("GET", "/v1/destinations/1", None, alice) == 200

    rule = {"kind": "order", "account_id": 1, "destination_ids": [1, 2]}
    assert call("POST", "/v1/rules", rule, alice) == 201
    assert call("POST", "/v1/rules", {**rule, "message": GOOD_TOKEN + "{x}"}, alice) == 422
    assert call("GET", "/v1/rules", None, alice) == 200
    assert call("POST", "/v1/rules/1/test", None, alice) == 202
    assert call("GET", "/v1/events", None, alice) == 200
    assert call("DELETE", "/v1/accounts/1", None, alice) == 409
    assert call("GET", "/openapi.json") == 200
    assert call("GET", "/readyz") == 503  # no engine runs here
    assert call("GET", "/metrics") == 200
    assert call("GET", "/v1/rules", None, {"Authorization": f"Bearer {GOOD_TOKEN}"}) == 401

    logs = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}"
        for r in caplog.records
        if not r.name.startswith(THIRD_PARTY)
    )
    assert logs  # the capture worked: the app and the feed logged something
    for secret in SECRETS:
        for body in bodies:
            assert secret not in body, f"{secret!r} in a response: {body[:300]}"
        assert secret not in logs, f"{secret!r} in the logs"
