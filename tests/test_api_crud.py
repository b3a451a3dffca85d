"""Full CRUD through HTTP for every resource and every rule kind, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import select

from alerts import health
from alerts.db.models import Account, Delivery, Destination, Rule, RuleChange, Ticker, utcnow
from alerts.domain.rules import RuleKind
from alerts.security import SecretBox
from alerts.services.rule_schemas import EXAMPLES
from tests.api_helpers import GOOD_TOKEN, SECRET_KEY, Api

# One change per kind that the PATCH test applies, and the field it checks afterwards.
UPDATES: dict[RuleKind, dict[str, Any]] = {
    RuleKind.PRICE_CROSS: {"level": "71000.5"},
    RuleKind.PRICE_RANGE: {"high": "7.25"},
    RuleKind.PERCENT_CHANGE: {"percent": "2.5", "window_seconds": 600},
    RuleKind.CANDLE_CLOSE: {"interval": "4hour"},
    RuleKind.LARGE_TRADE: {"min_quantity": "3"},
    RuleKind.SPREAD: {"percent": "1.5"},
    RuleKind.ORDER: {"statuses": ["PARTIALLY_FILLED"], "side": "SELL"},
    RuleKind.BALANCE: {"condition": "above", "amount": "5000"},
}


def _account(api: Api, headers: dict[str, str], name: str = "main") -> int:
    body = {"name": name, "token": GOOD_TOKEN, "notify_orders": False, "notify_balances": False}
    return int(api.create("/v1/accounts", body, headers)["id"])


def _example(kind: RuleKind, account_id: int) -> dict[str, Any]:
    body = dict(EXAMPLES[kind])
    if "account_id" in body:
        body["account_id"] = account_id
    return body


@pytest.mark.parametrize("kind", list(RuleKind))
def test_rule_crud_for_every_kind(api: Api, kind: RuleKind) -> None:
    alice = api.user("alice", telegram_user_id=111)
    account_id = _account(api, alice)
    chat = api.create("/v1/destinations", {"kind": "telegram", "chat_id": 111}, alice)
    body = {**_example(kind, account_id), "destination_ids": [chat["id"]], "name": "mine"}

    created = api.create("/v1/rules", body, alice)
    assert created["kind"] == kind.value
    assert created["name"] == "mine"
    assert created["destination_ids"] == [chat["id"]]
    assert created["enabled"] is True and created["fire_count"] == 0
    for key, value in body.items():
        assert created[key] == value, key

    rule_id = created["id"]
    read = api.client.get(f"/v1/rules/{rule_id}", headers=alice)
    assert read.status_code == 200 and read.json() == created

    listed = api.client.get("/v1/rules", params={"kind": kind.value}, headers=alice).json()
    assert [r["id"] for r in listed["items"]] == [rule_id]

    r = api.client.patch(f"/v1/rules/{rule_id}", json=UPDATES[kind], headers=alice)
    assert r.status_code == 200, r.text
    updated = r.json()
    for key, value in UPDATES[kind].items():
        assert updated[key] == value
    assert updated["name"] == "mine"
    assert updated["updated_at"] >= created["updated_at"]

    r = api.client.patch(f"/v1/rules/{rule_id}", json={"enabled": False}, headers=alice)
    assert r.json()["enabled"] is False

    r = api.client.delete(f"/v1/rules/{rule_id}", headers=alice)
    assert r.status_code == 204
    assert api.client.get(f"/v1/rules/{rule_id}", headers=alice).status_code == 404
    with api.db.session() as session:
        assert session.get(Rule, rule_id) is None
        changes = session.exec(select(RuleChange).where(RuleChange.rule_id == rule_id)).all()
        assert len(changes) == 4  # create, two updates, delete: the engine hears of each


def test_rule_defaults_and_generated_names(api: Api) -> None:
    alice = api.user("alice")
    rule = api.create(
        "/v1/rules", {"kind": "price_cross", "symbol": "btc-usdt", "level": "70000"}, alice
    )
    assert rule["symbol"] == "BTC-USDT"
    assert rule["direction"] == "any" and rule["source"] == "last"
    assert rule["trigger"] == "once" and rule["cooldown_seconds"] == 300
    assert rule["name"] == "BTC-USDT crosses 70000"
    r = api.client.patch(f"/v1/rules/{rule['id']}", json={"level": "65000.25"}, headers=alice)
    assert r.json()["name"] == "BTC-USDT crosses 65000.25"  # a made-up name follows the level
    r = api.client.patch(f"/v1/rules/{rule['id']}", json={"name": None}, headers=alice)
    assert r.json()["name"] == "BTC-USDT crosses 65000.25"


def test_rule_list_filters_and_pages(api: Api) -> None:
    alice = api.user("alice")
    ids = []
    for i in range(7):
        symbol = "BTC-USDT" if i % 2 == 0 else "TON-USDT"
        body = {"kind": "price_cross", "symbol": symbol, "level": str(100 + i)}
        ids.append(api.create("/v1/rules", body, alice)["id"])
    api.client.patch(f"/v1/rules/{ids[0]}", json={"enabled": False}, headers=alice)

    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.client.get("/v1/rules", params=params, headers=alice).json()
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids

    def listed(**params: Any) -> list[int]:
        r = api.client.get("/v1/rules", params=params, headers=alice)
        assert r.status_code == 200, r.text
        return [item["id"] for item in r.json()["items"]]

    assert listed(symbol="ton-usdt") == ids[1::2]
    assert listed(enabled="false") == [ids[0]]
    assert listed(enabled="true", symbol="BTC-USDT") == ids[2::2]
    assert listed(kind="spread") == []


def test_rule_expiry_and_cooldown_are_stored(api: Api) -> None:
    alice = api.user("alice")
    later = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    body = {
        "kind": "spread",
        "symbol": "TON-USDT",
        "percent": "0.5",
        "trigger": "every",
        "cooldown_seconds": 45,
        "expires_at": later.isoformat(),
        "message": "{symbol} spread {spread} ({percent}%)",
    }
    rule = api.create("/v1/rules", body, alice)
    assert datetime.fromisoformat(rule["expires_at"]) == later
    assert rule["cooldown_seconds"] == 45 and rule["trigger"] == "every"
    r = api.client.patch(f"/v1/rules/{rule['id']}", json={"expires_at": None}, headers=alice)
    assert r.json()["expires_at"] is None


def test_destination_crud(api: Api) -> None:
    alice = api.user("alice", telegram_user_id=222)
    chat = api.create("/v1/destinations", {"kind": "telegram"}, alice)  # their own chat
    assert chat == {**chat, "kind": "telegram", "chat_id": 222, "url": None, "enabled": True}
    hook = api.create(
        "/v1/destinations",
        {
            "kind": "apprise",
            "url": "json://user:hunter2pass@hooks.example.com:9/hook",
            "name": "hook",
        },
        alice,
    )
    assert hook["name"] == "hook" and "hunter2pass" not in hook["url"]
    assert hook["url"].startswith("json://user:") and "@hooks.example.com:9/hook" in hook["url"]
    group = api.link_chat(alice, -100555)  # linked with /link, then removed: still proven
    assert api.client.delete(f"/v1/destinations/{group['id']}", headers=alice).status_code == 204

    listed = api.client.get("/v1/destinations", headers=alice).json()["items"]
    assert [d["id"] for d in listed] == [chat["id"], hook["id"]]
    assert api.client.get(f"/v1/destinations/{hook['id']}", headers=alice).json() == hook

    r = api.client.patch(
        f"/v1/destinations/{chat['id']}", json={"name": "desk", "chat_id": -100555}, headers=alice
    )
    assert r.status_code == 200 and r.json()["name"] == "desk" and r.json()["chat_id"] == -100555
    r = api.client.patch(
        f"/v1/destinations/{hook['id']}", json={"url": "ntfy://ntfy.sh/alerts-topic"}, headers=alice
    )
    assert r.json()["url"].startswith("ntfy://")
    with api.db.session() as session:
        row = session.get(Destination, hook["id"])
        assert row is not None and row.url_sealed is not None
        assert "ntfy.sh" not in row.url_sealed  # stored encrypted
        assert SecretBox(SECRET_KEY).open(row.url_sealed) == "ntfy://ntfy.sh/alerts-topic"

    r = api.client.patch(f"/v1/destinations/{chat['id']}", json={"url": "x://y"}, headers=alice)
    assert r.status_code == 422

    for d in (chat, hook):
        assert api.client.delete(f"/v1/destinations/{d['id']}", headers=alice).status_code == 204
    assert api.client.get("/v1/destinations", headers=alice).json() == {"items": []}


def test_destination_in_use_cannot_be_deleted(api: Api) -> None:
    alice = api.user("alice", telegram_user_id=7)
    chat = api.create("/v1/destinations", {"kind": "telegram", "chat_id": 7}, alice)
    body = {"kind": "spread", "symbol": "BTC-USDT", "percent": "1", "destination_ids": [chat["id"]]}
    rule = api.create("/v1/rules", body, alice)
    r = api.client.delete(f"/v1/destinations/{chat['id']}", headers=alice)
    assert r.status_code == 409 and str(rule["id"]) in r.json()["detail"]
    r = api.client.post("/v1/destinations", json={"kind": "telegram", "chat_id": 7}, headers=alice)
    assert r.status_code == 409


def test_account_crud(api: Api) -> None:
    alice = api.user("alice")
    account = api.create("/v1/accounts", {"name": "main", "token": GOOD_TOKEN}, alice)
    assert account["status"] == "active" and account["verified_at"] is not None
    assert "token" not in account
    assert api.client.get("/v1/accounts", headers=alice).json()["items"] == [account]
    assert api.client.get(f"/v1/accounts/{account['id']}", headers=alice).json() == account

    with api.db.session() as session:
        row = session.get(Account, account["id"])
        assert row is not None and GOOD_TOKEN not in row.token_sealed
        assert SecretBox(SECRET_KEY).open(row.token_sealed) == GOOD_TOKEN

    r = api.client.patch(
        f"/v1/accounts/{account['id']}",
        json={"name": "spot", "notify_balances": False},
        headers=alice,
    )
    assert r.status_code == 200
    assert r.json()["name"] == "spot" and r.json()["notify_balances"] is False

    r = api.client.post("/v1/accounts", json={"name": "spot", "token": GOOD_TOKEN}, headers=alice)
    assert r.status_code == 409

    rule = api.create(
        "/v1/rules", {"kind": "balance", "account_id": account["id"], "amount": "1"}, alice
    )
    assert api.client.delete(f"/v1/accounts/{account['id']}", headers=alice).status_code == 409
    api.client.delete(f"/v1/rules/{rule['id']}", headers=alice)
    assert api.client.delete(f"/v1/accounts/{account['id']}", headers=alice).status_code == 204
    assert api.client.get(f"/v1/accounts/{account['id']}", headers=alice).status_code == 404


def test_account_notifications_are_rules_that_follow_the_switches(api: Api) -> None:
    alice = api.user("alice")
    account = api.create("/v1/accounts", {"name": "main", "token": GOOD_TOKEN}, alice)
    rules = {r["kind"]: r for r in api.client.get("/v1/rules", headers=alice).json()["items"]}
    orders, balances = rules["order"], rules["balance"]
    assert (orders["id"], balances["id"]) == (
        account["orders_rule_id"],
        account["balances_rule_id"],
    )
    assert orders["name"] == "Orders on main" and orders["trigger"] == "every"
    assert "FILLED" in orders["statuses"] and "NEW" not in orders["statuses"]
    assert balances["account_id"] == account["id"] and balances["enabled"] is True

    path = f"/v1/accounts/{account['id']}"
    api.client.patch(path, json={"notify_orders": False}, headers=alice)
    assert api.client.get(f"/v1/rules/{orders['id']}", headers=alice).json()["enabled"] is False
    api.client.delete(f"/v1/rules/{balances['id']}", headers=alice)
    r = api.client.patch(path, json={"notify_orders": True}, headers=alice)
    assert api.client.get(f"/v1/rules/{orders['id']}", headers=alice).json()["enabled"] is True
    remade = api.client.get(f"/v1/rules/{r.json()['balances_rule_id']}", headers=alice).json()
    assert remade["kind"] == "balance" and remade["enabled"] is True  # deleted, so made again

    assert api.client.delete(path, headers=alice).status_code == 204  # its own rules go too
    assert api.client.get("/v1/rules", headers=alice).json()["items"] == []


def test_user_and_key_admin(api: Api) -> None:
    created = api.client.post(
        "/v1/users", json={"name": "bob", "telegram_user_id": 99}, headers=api.admin
    ).json()
    bob = {"Authorization": f"Bearer {created['api_key']}"}
    me = api.client.get("/v1/users/me", headers=bob).json()
    assert me == {k: v for k, v in created.items() if k != "api_key"}

    listed = api.client.get("/v1/users", headers=api.admin).json()
    assert [u["name"] for u in listed] == ["bob"]
    r = api.client.patch(f"/v1/users/{me['id']}", json={"name": "robert"}, headers=api.admin)
    assert r.json()["name"] == "robert" and r.json()["telegram_user_id"] == 99

    other = api.client.post(
        "/v1/users", json={"name": "x", "telegram_user_id": 99}, headers=api.admin
    )
    assert other.status_code == 409

    key = api.client.post(f"/v1/users/{me['id']}/api-keys", json={"name": "ci"}, headers=api.admin)
    assert key.status_code == 201
    second = {"Authorization": f"Bearer {key.json()['api_key']}"}
    assert api.client.get("/v1/users/me", headers=second).status_code == 200
    keys = api.client.get(f"/v1/users/{me['id']}/api-keys", headers=api.admin).json()
    assert [k["name"] for k in keys] == ["default", "ci"]
    assert all("api_key" not in k for k in keys)

    first_key_id = keys[0]["id"]
    r = api.client.delete(f"/v1/users/{me['id']}/api-keys/{first_key_id}", headers=api.admin)
    assert r.status_code == 204
    assert api.client.get("/v1/users/me", headers=bob).status_code == 401

    chat = api.create("/v1/destinations", {"kind": "telegram", "chat_id": 99}, second)
    account = api.create("/v1/accounts", {"name": "a", "token": GOOD_TOKEN}, second)
    body = {"kind": "order", "account_id": account["id"], "destination_ids": [chat["id"]]}
    rule = api.create("/v1/rules", body, second)
    assert api.client.post(f"/v1/rules/{rule['id']}/test", headers=second).status_code == 202
    assert api.client.delete(f"/v1/users/{me['id']}", headers=api.admin).status_code == 204
    assert api.client.get("/v1/users/me", headers=second).status_code == 401
    with api.db.session() as session:
        assert session.exec(select(Rule)).all() == []  # everything they owned went with them


def test_test_send_and_events(api: Api) -> None:
    alice = api.user("alice", telegram_user_id=4242)
    rule = api.create(
        "/v1/rules", {"kind": "price_cross", "symbol": "BTC-USDT", "level": "70000"}, alice
    )
    r = api.client.post(f"/v1/rules/{rule['id']}/test", headers=alice)
    assert r.status_code == 409 and "/start" in r.json()["detail"]  # no chat linked yet

    chat = api.create("/v1/destinations", {"kind": "telegram", "chat_id": 4242}, alice)
    with api.db.session() as session:
        session.add(Ticker(symbol="BTC-USDT", last=Decimal("69999.5")))
        session.commit()
    r = api.client.post(f"/v1/rules/{rule['id']}/test", headers=alice)
    assert r.status_code == 202, r.text
    event = r.json()
    assert event["test"] is True and event["rule_id"] == rule["id"]
    assert event["values"]["price"] == "69999.5" and event["values"]["level"] == "70000"
    assert [(d["destination_id"], d["status"]) for d in event["deliveries"]] == [
        (chat["id"], "pending")
    ]
    with api.db.session() as session:
        assert len(session.exec(select(Delivery)).all()) == 1  # in the outbox for the workers

    page = api.client.get("/v1/events", headers=alice).json()
    assert page["items"] == [event] and page["next_cursor"] is None
    assert api.client.get(f"/v1/events/{event['id']}", headers=alice).json() == event
    assert (
        api.client.get("/v1/events", params={"rule_id": 999}, headers=alice).json()["items"] == []
    )

    api.client.delete(f"/v1/rules/{rule['id']}", headers=alice)
    kept = api.client.get(f"/v1/events/{event['id']}", headers=alice).json()
    assert kept["rule_id"] is None and kept["rule_name"] == rule["name"]


def test_market_tickers(api: Api) -> None:
    alice, bob = api.user("alice"), api.user("bob")
    assert api.client.get("/v1/market/tickers", headers=alice).json() == {"items": []}
    with api.db.session() as session:
        session.add(Ticker(symbol="BTC-USDT", last=Decimal("70000.10"), bid=Decimal("70000")))
        session.add(Ticker(symbol="TON-USDT", last=Decimal("5.5")))
        session.add(Ticker(symbol="ETH-USDT", last=Decimal("3000")))
        session.commit()
    for symbol in ("TON-USDT", "BTC-USDT"):
        api.create("/v1/rules", {"kind": "spread", "symbol": symbol, "percent": "1"}, alice)
    api.create("/v1/rules", {"kind": "spread", "symbol": "ETH-USDT", "percent": "1"}, bob)
    # Without names: only what the caller's rules follow (not what other users watch).
    items = api.client.get("/v1/market/tickers", headers=alice).json()["items"]
    assert [(t["symbol"], t["last"]) for t in items] == [
        ("BTC-USDT", "70000.10"),
        ("TON-USDT", "5.5"),
    ]
    r = api.client.get("/v1/market/tickers", params={"symbols": "ETH-USDT"}, headers=alice)
    assert [t["symbol"] for t in r.json()["items"]] == ["ETH-USDT"]  # named explicitly
    one = api.client.get("/v1/market/tickers/btc-usdt", headers=alice).json()
    assert one["bid"] == "70000" and one["ask"] is None
    r = api.client.get("/v1/market/tickers", params={"symbols": "TON-USDT"}, headers=alice)
    assert [t["symbol"] for t in r.json()["items"]] == ["TON-USDT"]
    assert api.client.get("/v1/market/tickers/DOGE-USDT", headers=alice).status_code == 404


def test_health_endpoints(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")  # no engine has run: the feeds are not ready
    assert ready.status_code == 503 and ready.json()["checks"]["database"]["ok"] is True
    assert ready.json()["checks"]["feeds"] == {"ok": False, "error": "no engine has run yet"}
    public = {"connected": True, "last_message_age": 0.5}
    health.write(
        api.db, health.FEEDS, {"rules": 3, "connections": {"public": public}}, now=utcnow()
    )
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"]["feeds"] == {
        "ok": True,
        "connections": {"public": public},
        "rules": 3,
    }
    stale = {"connected": True, "last_message_age": 500}
    health.write(api.db, health.FEEDS, {"rules": 3, "connections": {"public": stale}}, now=utcnow())
    assert api.client.get("/readyz").status_code == 503
    metrics = api.client.get("/metrics")
    assert metrics.status_code == 200 and "python_info" in metrics.text


def test_readyz_says_when_recording_fails_or_loses_something(api: Api) -> None:
    """The engine's heartbeat carries how recording goes: failing for longer than
    ALERTS_RECORDING_UNHEALTHY_AFTER (30 s), or a dead letter in the last minute, is a 503
    that says so."""
    public = {"connected": True, "last_message_age": 0.5}

    def beat(recording: dict[str, float]) -> Any:
        value = {"rules": 1, "connections": {"public": public}, "recording": recording}
        health.write(api.db, health.FEEDS, value, now=utcnow())
        return api.client.get("/readyz")

    ready = beat({"failing_for": 0.0, "dead_letters_last_minute": 0})
    assert ready.status_code == 200 and ready.json()["checks"]["recording"]["ok"] is True
    assert beat({"failing_for": 12.0, "dead_letters_last_minute": 0}).status_code == 200
    ready = beat({"failing_for": 31.0, "dead_letters_last_minute": 0})
    assert ready.status_code == 503
    assert ready.json()["checks"]["recording"]["error"] == "recording has failed for 31 s"
    ready = beat({"failing_for": 0.0, "dead_letters_last_minute": 2})
    assert ready.status_code == 503
    assert "2 dead letter(s) in the last minute" in ready.json()["checks"]["recording"]["error"]
