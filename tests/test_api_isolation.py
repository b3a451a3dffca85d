"""A user never sees, changes, deletes or triggers another user's resources: 404 / nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlmodel import select

from alerts.db.models import Account, Destination, Event, Rule, utcnow
from alerts.db.outbox import record_event
from tests.api_helpers import GOOD_TOKEN, OTHER_TOKEN, Api


def _alice_world(api: Api) -> dict[str, Any]:
    alice = api.user("alice", telegram_user_id=1001)
    chat = api.create("/v1/destinations", {"kind": "telegram", "chat_id": 1001}, alice)
    hook = api.create("/v1/destinations", {"kind": "apprise", "url": "ntfy://ntfy.sh/a"}, alice)
    account = api.create("/v1/accounts", {"name": "main", "token": GOOD_TOKEN}, alice)
    rule = api.create(
        "/v1/rules",
        {"kind": "order", "account_id": account["id"], "destination_ids": [chat["id"]]},
        alice,
    )
    event = api.client.post(f"/v1/rules/{rule['id']}/test", headers=alice).json()
    return {
        "headers": alice,
        "destination": chat,
        "apprise": hook,
        "account": account,
        "rule": rule,
        "event": event,
    }


def test_every_endpoint_hides_other_users_resources(api: Api) -> None:
    world = _alice_world(api)
    bob = api.user("bob", telegram_user_id=2002)
    bob_chat = api.create("/v1/destinations", {"kind": "telegram", "chat_id": 2002}, bob)
    d, h, a, r, e = (world[k]["id"] for k in ("destination", "apprise", "account", "rule", "event"))

    attempts = [
        ("GET", f"/v1/destinations/{d}", None),
        ("PATCH", f"/v1/destinations/{d}", {"name": "mine now"}),
        ("PATCH", f"/v1/destinations/{h}", {"url": "ntfy://ntfy.sh/b"}),
        ("DELETE", f"/v1/destinations/{h}", None),
        ("GET", f"/v1/accounts/{a}", None),
        ("PATCH", f"/v1/accounts/{a}", {"name": "stolen"}),
        ("PATCH", f"/v1/accounts/{a}", {"token": OTHER_TOKEN}),
        ("DELETE", f"/v1/accounts/{a}", None),
        ("GET", f"/v1/rules/{r}", None),
        ("PATCH", f"/v1/rules/{r}", {"enabled": False}),
        ("PATCH", f"/v1/rules/{r}", {"destination_ids": [bob_chat["id"]]}),
        ("DELETE", f"/v1/rules/{r}", None),
        ("POST", f"/v1/rules/{r}/test", None),
        ("GET", f"/v1/events/{e}", None),
    ]
    for method, path, body in attempts:
        response = api.client.request(method, path, json=body, headers=bob)
        assert response.status_code == 404, (method, path, response.text)
        assert "alice" not in response.text

    # Lists show bob nothing of alice's, with or without filters.
    assert api.client.get("/v1/rules", headers=bob).json()["items"] == []
    assert api.client.get("/v1/rules", params={"account_id": a}, headers=bob).json()["items"] == []
    assert api.client.get("/v1/events", headers=bob).json()["items"] == []
    assert api.client.get("/v1/events", params={"rule_id": r}, headers=bob).json()["items"] == []
    assert api.client.get("/v1/accounts", headers=bob).json()["items"] == []
    destinations = api.client.get("/v1/destinations", headers=bob).json()["items"]
    assert [x["id"] for x in destinations] == [bob_chat["id"]]

    # Nothing of alice's changed, and bob's test-send created nothing.
    with api.db.session() as session:
        assert session.get(Destination, d).name == world["destination"]["name"]  # type: ignore[union-attr]
        assert session.get(Destination, h) is not None
        assert session.get(Account, a).name == "main"  # type: ignore[union-attr]
        rule = session.get(Rule, r)
        assert rule is not None and rule.enabled
        assert len(session.exec(select(Event)).all()) == 1
    assert api.client.get(f"/v1/rules/{r}", headers=world["headers"]).json() == world["rule"]


def test_rules_cannot_point_at_other_users_destinations_or_accounts(api: Api) -> None:
    world = _alice_world(api)
    bob = api.user("bob")
    d, a = world["destination"]["id"], world["account"]["id"]

    cases = [
        {"kind": "spread", "symbol": "BTC-USDT", "percent": "1", "destination_ids": [d]},
        {"kind": "order", "account_id": a},
        {"kind": "balance", "account_id": a, "amount": "1"},
    ]
    for body in cases:
        r = api.client.post("/v1/rules", json=body, headers=bob)
        assert r.status_code == 422, r.text
        assert "does not exist" in r.text
    own = api.create("/v1/rules", {"kind": "spread", "symbol": "BTC-USDT", "percent": "1"}, bob)
    r = api.client.patch(f"/v1/rules/{own['id']}", json={"destination_ids": [d]}, headers=bob)
    assert r.status_code == 422


def test_events_of_other_users_stay_hidden_even_with_their_ids(api: Api) -> None:
    world = _alice_world(api)
    bob = api.user("bob")
    with api.db.session() as session:
        alice_id = session.exec(select(Rule.user_id)).first()
        assert alice_id is not None
        event, _ = record_event(
            session,
            user_id=alice_id,  # an event bob must never see, whatever id he tries
            rule_id=None,
            rule_name="x",
            kind="spread",
            symbol="BTC-USDT",
            values={"spread": str(Decimal("1"))},
            destination_ids=[],
            now=utcnow(),
        )
        session.commit()
    r = api.client.get(f"/v1/events/{event.id}", headers=bob)
    assert r.status_code == 404
    page = api.client.get("/v1/events", headers=world["headers"]).json()
    assert {item["id"] for item in page["items"]} == {world["event"]["id"], event.id}


def test_users_cannot_use_admin_endpoints_and_admin_cannot_act_as_user(api: Api) -> None:
    alice = api.user("alice")
    for method, path in [
        ("GET", "/v1/users"),
        ("POST", "/v1/users"),
        ("GET", "/v1/users/1"),
        ("DELETE", "/v1/users/1"),
        ("POST", "/v1/users/1/api-keys"),
    ]:
        body = {"name": "x"} if method == "POST" else None
        r = api.client.request(method, path, json=body, headers=alice)
        assert r.status_code == 403, (method, path, r.text)
    r = api.client.get("/v1/rules", headers=api.admin)
    assert r.status_code == 403 and "user's API key" in r.json()["detail"]


def test_missing_and_wrong_credentials(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}):
        r = api.client.get("/v1/rules", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["www-authenticate"] == "Bearer"
        assert r.json()["code"] == "unauthenticated"
