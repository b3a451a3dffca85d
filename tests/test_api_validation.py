"""Bad input gets a 4xx that says what to fix; tokens are checked with the (simulated) exchange."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from alerts.db.models import Account, Destination, Rule
from tests.api_helpers import (
    BLOCKED_TOKEN,
    GOOD_TOKEN,
    OTHER_TOKEN,
    Api,
    BackgroundExchange,
    open_api,
)

CROSS = {"kind": "price_cross", "symbol": "BTC-USDT", "level": "70000"}
PAST = (datetime.now(UTC) - timedelta(hours=1)).isoformat()

INVALID_RULES: list[tuple[dict[str, Any], str]] = [
    ({**CROSS, "level": 70000}, "give it as a string"),
    ({**CROSS, "level": "-5"}, "must be a decimal string"),
    ({**CROSS, "level": "0"}, "greater than 0"),
    ({**CROSS, "level": "1e5"}, "must be a decimal string"),
    ({**CROSS, "level": "1." + "0" * 19}, "must be a decimal string"),
    ({**CROSS, "symbol": "BTCUSDT"}, "exchange's format"),
    ({**CROSS, "direction": "sideways"}, "'up', 'down' or 'any'"),
    ({**CROSS, "source": "mid"}, "'last', 'bid' or 'ask'"),
    ({**CROSS, "colour": "red"}, "Extra inputs"),
    ({**CROSS, "kind": "moon"}, "does not match any of the expected tags"),
    ({**CROSS, "name": ""}, "at least 1 character"),
    ({**CROSS, "trigger": "every", "cooldown_seconds": -1}, "greater than or equal to 0"),
    ({**CROSS, "expires_at": PAST}, "expires_at is in the past"),
    ({**CROSS, "destination_ids": [12345]}, "destination 12345 does not exist"),
    ({**CROSS, "destination_ids": [2**40]}, "less than or equal to"),
    ({**CROSS, "message": "{price.__class__}"}, "unknown placeholder"),
    ({**CROSS, "message": "{price!r}"}, "no format spec or conversion"),
    ({**CROSS, "message": "{price:>{level}}"}, "no format spec or conversion"),
    ({**CROSS, "message": "oops {"}, "literal brace"),
    ({**CROSS, "message": "{quantity}"}, "unknown placeholder {quantity}"),
    (
        {"kind": "price_range", "symbol": "BTC-USDT", "low": "10", "high": "10"},
        "low must be below high",
    ),
    (
        {"kind": "percent_change", "symbol": "BTC-USDT", "percent": "5", "window_seconds": 5},
        "greater than or equal to 10",
    ),
    (
        {"kind": "percent_change", "symbol": "BTC-USDT", "percent": "0", "window_seconds": 60},
        "above 0",
    ),
    (
        {
            "kind": "candle_close",
            "symbol": "BTC-USDT",
            "interval": "2min",
            "level": "1",
            "direction": "above",
        },
        "'1min'",
    ),
    ({"kind": "large_trade", "symbol": "BTC-USDT"}, "min_quantity, min_notional or both"),
    ({"kind": "spread", "symbol": "BTC-USDT", "percent": "100"}, "below 100"),
    ({"kind": "order", "account_id": 1, "statuses": []}, "at least 1 item"),
    ({"kind": "order", "account_id": 1, "statuses": ["DONE"]}, "'NEW'"),
    ({"kind": "order", "account_id": 999}, "account 999 does not exist"),
    ({"kind": "balance", "account_id": 1, "condition": "below"}, "needs an amount"),
    ({"kind": "balance", "account_id": 1, "currency": "US DT"}, "currency code"),
]


def test_invalid_rules_get_422_with_an_actionable_message(api: Api) -> None:
    alice = api.user("alice")
    quiet = {"notify_orders": False, "notify_balances": False}  # no notification rules
    api.create("/v1/accounts", {"name": "main", "token": GOOD_TOKEN, **quiet}, alice)  # 1
    for body, message in INVALID_RULES:
        r = api.client.post("/v1/rules", json=body, headers=alice)
        assert r.status_code == 422, (body, r.text)
        detail = r.json()["detail"]
        assert any(message in item["msg"] for item in detail), (message, detail)
        assert all(set(item) == {"loc", "msg", "type"} for item in detail)  # input not echoed
    with api.db.session() as session:
        assert session.exec(select(Rule)).all() == []


def test_invalid_updates(api: Api) -> None:
    alice = api.user("alice")
    rule = api.create("/v1/rules", CROSS, alice)
    path = f"/v1/rules/{rule['id']}"
    for body, message in [
        ({"kind": "spread"}, "kind cannot change"),
        ({"low": "1"}, "Extra inputs"),
        ({"level": "abc"}, "must be a decimal string"),
        ({"expires_at": PAST}, "in the past"),
        ({"unknown": 1}, "Extra inputs"),
    ]:
        r = api.client.patch(path, json=body, headers=alice)
        assert r.status_code == 422, (body, r.text)
        assert any(message in item["msg"] for item in r.json()["detail"]), r.text
    assert api.client.get(path, headers=alice).json() == rule  # nothing half-applied


def test_malformed_requests(api: Api) -> None:
    alice = api.user("alice")
    r = api.client.post(
        "/v1/rules", content=b"{not json", headers={**alice, "content-type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = api.client.post("/v1/rules", json=["a list"], headers=alice)
    assert r.status_code == 422
    big = {**CROSS, "name": "x" * 100, "message": "y" * 100_000}
    r = api.client.post("/v1/rules", json=big, headers=alice)
    assert r.status_code == 413 and r.json()["code"] == "too_large"
    for path in ("/v1/rules/0", f"/v1/rules/{2**40}", "/v1/rules/abc", "/v1/events/-1"):
        assert api.client.get(path, headers=alice).status_code == 422, path
    assert api.client.get("/v1/rules", params={"cursor": "x"}, headers=alice).status_code == 422
    assert api.client.get("/v1/rules", params={"limit": 0}, headers=alice).status_code == 422
    assert api.client.get("/v1/rules", params={"symbol": "BTC"}, headers=alice).status_code == 422


def test_text_the_database_cannot_store_is_a_422(api: Api) -> None:
    alice = api.user("alice")
    for field in ("name", "message"):
        r = api.client.post("/v1/rules", json={**CROSS, field: "nul\x00byte"}, headers=alice)
        assert r.status_code == 422, r.text
        assert "control characters" in r.text
    r = api.client.post("/v1/users", json={"name": "a\x00"}, headers=api.admin)
    assert r.status_code == 422


def test_apprise_urls_are_checked(api: Api) -> None:
    alice = api.user("alice")
    for url, message in [
        ("not a url", "looks like scheme://"),
        ("bogus://SECRET-in-bogus", "Apprise cannot use this bogus:// URL"),
        ("json://", "Apprise cannot use this json:// URL"),
    ]:
        r = api.client.post("/v1/destinations", json={"kind": "apprise", "url": url}, headers=alice)
        assert r.status_code == 422, r.text
        assert message in r.text and "SECRET" not in r.text
    r = api.client.post(
        "/v1/destinations", json={"kind": "telegram", "chat_id": "x"}, headers=alice
    )
    assert r.status_code == 422
    r = api.client.post("/v1/destinations", json={"kind": "sms", "to": "1"}, headers=alice)
    assert r.status_code == 422


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def restricted_api(tmp_path: Path, exchange: BackgroundExchange) -> Iterator[Api]:
    """An API whose operator allows only ntfy and Discord URLs."""
    yield from open_api(
        f"sqlite:///{tmp_path}/r.db", exchange.url, ALERTS_APPRISE_SCHEMES="ntfy, ntfys,discord"
    )


def test_operator_can_restrict_apprise_schemes(restricted_api: Api) -> None:
    api = restricted_api
    alice = api.user("alice")
    r = api.client.post(
        "/v1/destinations",
        json={"kind": "apprise", "url": "json://10.0.0.1/internal"},
        headers=alice,
    )
    assert r.status_code == 422
    assert "json:// URLs are not allowed" in r.text and "discord, ntfy, ntfys" in r.text
    api.create("/v1/destinations", {"kind": "apprise", "url": "ntfy://ntfy.sh/ok"}, alice)


def test_account_tokens_are_verified_with_the_exchange(api: Api) -> None:
    alice = api.user("alice")
    for token, kind, words in [
        ("not-a-known-token", "token_invalid", "invalid, expired or revoked"),
        (BLOCKED_TOKEN, "user_blocked", "blocked"),
    ]:
        r = api.client.post("/v1/accounts", json={"name": "x", "token": token}, headers=alice)
        assert r.status_code == 422, r.text
        [item] = r.json()["detail"]
        assert item["type"] == kind and words in item["msg"] and item["loc"] == ["body", "token"]
        assert token not in r.text
    account = api.create("/v1/accounts", {"name": "main", "token": GOOD_TOKEN}, alice)

    # A refused replacement leaves the stored token as it was.
    r = api.client.patch(
        f"/v1/accounts/{account['id']}", json={"token": BLOCKED_TOKEN}, headers=alice
    )
    assert r.status_code == 422
    r = api.client.patch(
        f"/v1/accounts/{account['id']}", json={"token": OTHER_TOKEN}, headers=alice
    )
    assert r.status_code == 200 and r.json()["status"] == "active"
    with api.db.session() as session:
        assert len(session.exec(select(Account)).all()) == 1


@pytest.fixture
def offline_api(tmp_path: Path, exchange: BackgroundExchange) -> Iterator[Api]:
    """An API whose exchange URL points at a closed port."""
    yield from open_api(
        f"sqlite:///{tmp_path}/o.db", f"ws://127.0.0.1:{_free_port()}/", ALERTS_SECRET_KEY=""
    )


def test_unreachable_exchange_and_missing_secret_key_are_503(
    offline_api: Api, tmp_path: Path, exchange: BackgroundExchange
) -> None:
    api = offline_api
    alice = api.user("alice")
    r = api.client.post("/v1/accounts", json={"name": "x", "token": GOOD_TOKEN}, headers=alice)
    assert r.status_code == 503 and "ALERTS_SECRET_KEY" in r.json()["detail"]
    r = api.client.post(
        "/v1/destinations", json={"kind": "apprise", "url": "ntfy://ntfy.sh/x"}, headers=alice
    )
    assert r.status_code == 503 and "ALERTS_SECRET_KEY" in r.json()["detail"]
    with api.db.session() as session:
        assert session.exec(select(Destination)).all() == []

    for online in open_api(f"sqlite:///{tmp_path}/u.db", f"ws://127.0.0.1:{_free_port()}/"):
        bob = online.user("bob")
        r = online.client.post("/v1/accounts", json={"name": "x", "token": GOOD_TOKEN}, headers=bob)
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["code"] == "exchange_unavailable" and "could not be reached" in body["detail"]
        assert GOOD_TOKEN not in r.text
