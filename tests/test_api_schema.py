"""schemathesis against our own OpenAPI schema: no 5xx, and every response matches the schema.

Bounded: a few dozen generated requests per operation, on SQLite and on PostgreSQL, with a
populated database so that generated ids sometimes hit real resources.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.case import Case

from tests.api_helpers import ADMIN_TOKEN, GOOD_TOKEN, Api

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
_keys: dict[str, str] = {}


def _populate(api: Api) -> None:
    alice = api.user("alice", telegram_user_id=77)
    chat = api.create("/v1/destinations", {"kind": "telegram", "chat_id": 77}, alice)
    api.create("/v1/destinations", {"kind": "apprise", "url": "ntfy://ntfy.sh/t"}, alice)
    account = api.create("/v1/accounts", {"name": "main", "token": GOOD_TOKEN}, alice)
    body = {"kind": "order", "account_id": account["id"], "destination_ids": [chat["id"]]}
    rule = api.create("/v1/rules", body, alice)
    api.client.post(f"/v1/rules/{rule['id']}/test", headers=alice)
    _keys["user"] = api.keys["alice"]


def _headers(path: str) -> dict[str, str]:
    admin = path.startswith("/v1/users") and path != "/v1/users/me"
    return {"Authorization": f"Bearer {ADMIN_TOKEN if admin else _keys['user']}"}


def test_api_conforms_to_its_schema(api: Api) -> None:
    _populate(api)
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25  # every endpoint of the contract is in the schema

    failures: list[str] = []
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Case) -> None:
            headers = {**(case.headers or {}), **_headers(case.operation.path)}
            # /readyz answers its documented 503 here: no engine runs beside this app.
            checks = CHECKS[1:] if case.operation.path == "/readyz" else CHECKS
            response = case.call_and_validate(headers=headers, checks=checks)
            calls.append(response.status_code)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert len(calls) >= 5 * len(operations)
    assert any(200 <= code < 300 for code in calls) and any(code == 422 for code in calls)
