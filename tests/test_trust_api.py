"""The REST API's trust boundaries, tried as an attacker would: destinations that point at the
service's own network, secrets in Apprise URLs, quotas, the request rate, and the audit's
smaller holes (extreme dates, other scripts' digits)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.db.migrate import upgrade
from alerts.db.session import Database
from alerts.delivery.address_guard import address_allowed
from alerts.services.accounts import MAX_ACCOUNTS_PER_USER
from alerts.services.destinations import MAX_DESTINATIONS_PER_USER
from alerts.wiring import make_worker
from api.ratelimit import RequestLimiter
from tests.api_helpers import (
    ADMIN_TOKEN,
    GOOD_TOKEN,
    Api,
    BackgroundExchange,
    api_server,
    make_settings,
    open_api,
)
from tests.test_apprise_masking import CASES
from tests.webhook import Receiver, serving

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _local_name() -> str:
    """A host name that resolves to a loopback or private address (this machine's own)."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 80)}
    except OSError:
        addresses = set()
    if addresses and not any(address_allowed(str(a)) for a in addresses):
        return name
    return "localhost.localdomain"


class Receivers:
    """Local endpoints for json:// and form:// (IPv4) and xml:// (IPv6 loopback)."""

    def __init__(self) -> None:
        self.v4, self.v6 = Receiver(), Receiver()

    def hit(self) -> int:
        return len(self.v4.raw) + len(self.v6.raw) + self.v4.peak + self.v6.peak


@pytest.fixture
async def receivers() -> AsyncIterator[Receivers]:
    both = Receivers()
    async with serving(both.v4), serving(both.v6, host="::1"):
        yield both


async def _service(
    database_url: str, sim_url: str, receivers: Receivers, *, allow: bool
) -> dict[str, Any]:
    """Create a user and one Apprise destination per URL shape; what each answered."""
    v4, v6 = receivers.v4, receivers.v6
    urls = {
        "json://127.0.0.1": v4.url(),
        "form://localhost": v4.url(scheme="form", host="localhost"),
        "xml://[::1]": v6.url(scheme="xml", host="[::1]"),
        "jsons://169.254.169.254": "jsons://169.254.169.254/latest/meta-data",
        "a name for 127.0.0.1": v4.url(host=_local_name()),
        "127.0.0.1 as a number": v4.url(host="2130706433"),
    }
    settings = make_settings(
        database_url, sim_url, ALERTS_ALLOW_PRIVATE_TARGETS=allow, ALERTS_APPRISE_PROCESSES=1
    )
    db = Database(database_url)
    worker = make_worker(settings, db)
    answers: dict[str, Any] = {}
    try:
        async with api_server(settings, db) as api:
            r = await api.post("/v1/users", json={"name": "eve"}, headers=ADMIN)
            eve = {"Authorization": f"Bearer {r.json()['api_key']}"}
            for label, url in urls.items():
                r = await api.post(
                    "/v1/destinations", json={"kind": "apprise", "url": url}, headers=eve
                )
                answers[label] = r
                if r.status_code != 201 or "169.254" in label:
                    continue  # nothing answers at 169.254.169.254 here: sending would time out
                body = {"kind": "spread", "symbol": "BTC-USDT", "percent": "1"}
                rule = await api.post(
                    "/v1/rules", json={**body, "destination_ids": [r.json()["id"]]}, headers=eve
                )
                test = await api.post(f"/v1/rules/{rule.json()['id']}/test", headers=eve)
                assert test.status_code == 202, test.text
                while await worker.run_once():
                    pass
                event = await api.get(f"/v1/events/{test.json()['id']}", headers=eve)
                answers[label] = (r, event.json()["deliveries"][0])
    finally:
        await worker.apprise.close()
        db.dispose()
    return answers


async def test_destinations_on_the_services_own_network_deliver_nothing_by_default(
    database_url: str, exchange: BackgroundExchange, receivers: Receivers
) -> None:
    upgrade(database_url)
    answers = await _service(database_url, exchange.url, receivers, allow=False)
    for label in ("json://127.0.0.1", "form://localhost", "xml://[::1]", "jsons://169.254.169.254"):
        r = answers[label]
        assert r.status_code == 422, (label, r.text)
        assert "address not allowed" in r.text
    for label in ("a name for 127.0.0.1", "127.0.0.1 as a number"):
        created, delivery = answers[label]  # the name is checked where it is connected to
        assert created.status_code == 201
        assert delivery["status"] == "dead" and delivery["attempts"] == 1, label
        assert delivery["last_error"] == "address not allowed"
    assert receivers.hit() == 0  # not one request, not even a connection


async def test_an_operator_may_allow_private_targets(
    database_url: str, exchange: BackgroundExchange, receivers: Receivers
) -> None:
    upgrade(database_url)
    answers = await _service(database_url, exchange.url, receivers, allow=True)
    assert answers["jsons://169.254.169.254"].status_code == 201
    for label in (
        "json://127.0.0.1",
        "form://localhost",
        "xml://[::1]",
        "a name for 127.0.0.1",
        "127.0.0.1 as a number",
    ):
        created, delivery = answers[label]
        assert created.status_code == 201 and delivery["status"] == "sent", (label, delivery)
    assert len(receivers.v4.raw) == 4 and len(receivers.v6.raw) == 1
    assert b"BTC-USDT" in receivers.v6.raw[0]


@pytest.fixture
def open_schemes_api(tmp_path: Path, exchange: BackgroundExchange) -> Iterator[Api]:
    """An API whose operator allows every Apprise scheme."""
    yield from open_api(f"sqlite:///{tmp_path}/s.db", exchange.url, ALERTS_APPRISE_SCHEMES="*")


def test_no_secret_of_an_apprise_url_reaches_a_response_or_a_log_line(
    open_schemes_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    api = open_schemes_api
    caplog.set_level(logging.DEBUG)
    alice = api.user("alice")
    texts: list[str] = []
    created = 0
    for url, secrets, _shown in CASES:
        r = api.client.post("/v1/destinations", json={"kind": "apprise", "url": url}, headers=alice)
        texts.append(r.text)
        if r.status_code == 201:
            created += 1
            texts.append(api.client.get(f"/v1/destinations/{r.json()['id']}", headers=alice).text)
        for secret in secrets:
            assert secret not in r.text, (url, r.text)
    texts.append(api.client.get("/v1/destinations", headers=alice).text)
    logged = caplog.text
    assert created >= 20  # Apprise took at least twenty of the shapes
    for url, secrets, _shown in CASES:
        for secret in secrets:
            assert all(secret not in text for text in texts), (url, secret)
            assert secret not in logged, (url, secret)


def test_scheme_policy_by_default_and_as_the_operator_widens_it(api: Api) -> None:
    alice = api.user("alice")
    for url in ("syslog://", "windows://", "rsyslog://logs.example.com", "kodi://tv.example.com"):
        r = api.client.post("/v1/destinations", json={"kind": "apprise", "url": url}, headers=alice)
        assert r.status_code == 422 and "not allowed on this service" in r.text, url
    for url in ("discord://123456789/AbCdEf123456", "json://hooks.example.com/a"):
        api.create("/v1/destinations", {"kind": "apprise", "url": url}, alice)


# --- quotas and the request rate ------------------------------------------------------


@pytest.fixture
def small_api(database_url: str, exchange: BackgroundExchange) -> Iterator[Api]:
    """An API whose operator allows three rules per user and five requests a minute."""
    yield from open_api(
        database_url,
        exchange.url,
        ALERTS_MAX_RULES_PER_USER=3,
        ALERTS_API_REQUESTS_PER_MINUTE=5,
    )


def test_the_rule_quota_is_a_409_that_says_the_limit(small_api: Api) -> None:
    api, alice = small_api, small_api.user("alice")
    body = {"kind": "spread", "symbol": "BTC-USDT", "percent": "1"}
    for _ in range(3):
        api.create("/v1/rules", body, alice)
    r = api.client.post("/v1/rules", json=body, headers=alice)
    assert r.status_code == 409 and "you have 3 rules" in r.json()["detail"]
    assert r.json()["code"] == "limit_reached"


def test_over_the_request_rate_is_a_429_with_retry_after_per_key(small_api: Api) -> None:
    api = small_api
    alice, bob = api.user("alice"), api.user("bob")
    statuses = [api.client.get("/v1/rules", headers=alice).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    r = api.client.get("/v1/rules", headers=alice)
    assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
    assert "requests a minute" in r.json()["detail"] and r.json()["code"] == "rate_limited"
    assert api.client.get("/v1/rules", headers=bob).status_code == 200  # each key its own


def test_destination_and_account_quotas(api: Api) -> None:
    alice = api.user("alice", telegram_user_id=9)
    for i in range(MAX_DESTINATIONS_PER_USER):
        url = f"ntfy://ntfy.sh/topic-{i}"
        api.create("/v1/destinations", {"kind": "apprise", "url": url}, alice)
    r = api.client.post("/v1/destinations", json={"kind": "telegram"}, headers=alice)
    assert r.status_code == 409 and f"you have {MAX_DESTINATIONS_PER_USER} destinations" in r.text
    for i in range(MAX_ACCOUNTS_PER_USER):
        api.create("/v1/accounts", {"name": f"a{i}", "token": GOOD_TOKEN}, alice)
    r = api.client.post("/v1/accounts", json={"name": "one more", "token": "x"}, headers=alice)
    assert r.status_code == 409 and f"you have {MAX_ACCOUNTS_PER_USER} linked accounts" in r.text


# --- the audit's smaller findings -----------------------------------------------------


@pytest.mark.parametrize(
    "expires_at",
    [
        "9999-12-31T23:59:59-14:00",
        "9999-12-31T23:59:59",
        "2100-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
    ],
)
def test_extreme_expiry_times_are_a_422(api: Api, expires_at: str) -> None:
    alice = api.user("alice")
    body = {"kind": "spread", "symbol": "BTC-USDT", "percent": "1", "expires_at": expires_at}
    r = api.client.post("/v1/rules", json=body, headers=alice)
    assert r.status_code == 422, r.text
    rule = api.create("/v1/rules", {**body, "expires_at": "2099-01-01T00:00:00Z"}, alice)
    r = api.client.patch(f"/v1/rules/{rule['id']}", json={"expires_at": expires_at}, headers=alice)
    assert r.status_code == 422, r.text


# Arabic-Indic, full-width, an Arabic decimal separator, Devanagari: Decimal() takes them all.
@pytest.mark.parametrize(
    "level", ["\u0661\u0662\u0663", "\uff11\uff12", "12\u066b5", "\u096d\u0966"]
)
def test_decimals_take_ascii_digits_only(api: Api, level: str) -> None:
    alice = api.user("alice")
    body = {"kind": "price_cross", "symbol": "BTC-USDT", "level": level}
    r = api.client.post("/v1/rules", json=body, headers=alice)
    assert r.status_code == 422 and "decimal string" in r.text


def test_unknown_callers_are_not_rate_limited_into_a_500(small_api: Api) -> None:
    for _ in range(8):
        r = small_api.client.get("/v1/rules", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401


def test_counting_a_request_starts_no_thread() -> None:
    """`limits`' memory storage would start a timer thread per request (see api/ratelimit)."""
    limiter = RequestLimiter(1000)
    for _ in range(3):
        time.sleep(0.02)  # past the 10 ms timer `limits` starts with its storage
        assert limiter.wait("key") is None
        timers = [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
        assert not [t for t in timers if t.is_alive()]
