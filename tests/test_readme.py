"""The README's examples work: every rule kind's curl body creates that rule."""

from __future__ import annotations

import json
import re
from pathlib import Path

from alerts.domain.rules import RuleKind
from tests.api_helpers import GOOD_TOKEN, Api

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_has_a_working_example_for_every_rule_kind(api: Api) -> None:
    bodies = [json.loads(b) for b in re.findall(r"^rule '(\{.*\})'$", README.read_text(), re.M)]
    assert {b["kind"] for b in bodies} == {k.value for k in RuleKind}
    alice = api.user("alice")
    account = api.create("/v1/accounts", {"name": "main", "token": GOOD_TOKEN}, alice)
    assert account["id"] == 1  # the README's examples name account 1
    for _ in range(2):  # and destinations 1 and 2
        hook = {"kind": "webhook", "url": "https://example.com/hook"}
        api.create("/v1/destinations", hook, alice)
    for body in bodies:
        api.create("/v1/rules", body, alice)
