"""Property tests for the parsers users feed: decimals, symbols, templates, rule bodies."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from alerts.delivery.messages import default_text
from alerts.domain.rules import RuleKind
from alerts.domain.templates import (
    TemplateError,
    check_template,
    placeholders_for,
    render_template,
)
from alerts.domain.values import format_decimal, parse_decimal
from alerts.services.rule_schemas import EXAMPLES, rule_create_adapter
from alerts.services.samples import sample_values

exact = st.decimals(min_value=Decimal(0), max_value=Decimal("9" * 20), places=8, allow_nan=False)


@given(exact)
def test_decimals_round_trip_through_their_text(value: Decimal) -> None:
    assert parse_decimal(format_decimal(value)) == value
    assert "E" not in format_decimal(value)


@given(st.one_of(st.text(max_size=40), st.integers(), st.floats(), st.none(), st.booleans()))
def test_decimal_parser_only_ever_refuses_with_a_value_error(raw: Any) -> None:
    try:
        value = parse_decimal(raw)
    except ValueError:
        return
    assert value.is_finite() and value >= 0
    assert isinstance(raw, str)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("70000", "70000"), (" 0.5 ", "0.5"), ("007.10", "7.10"), ("1." + "0" * 18, "1." + "0" * 18)],
)
def test_decimal_examples(raw: str, expected: str) -> None:
    assert format_decimal(parse_decimal(raw)) == expected


@settings(max_examples=150)
@given(st.text(max_size=60))
def test_checked_templates_render_like_format_map(template: str) -> None:
    kind = RuleKind.PRICE_CROSS
    try:
        check_template(template, kind)
    except TemplateError:
        return
    values = {name: f"<{name}>" for name in placeholders_for(kind)}
    assert render_template(template, values) == template.format_map(values)


@given(
    st.lists(
        st.sampled_from(["{price}", "{symbol}", "{{", "}}", "text ", "{level}", "\n"]), max_size=8
    )
)
def test_templates_built_from_placeholders_always_pass(parts: list[str]) -> None:
    template = "".join(parts)
    check_template(template, RuleKind.PRICE_CROSS)
    rendered = render_template(template, {"price": "1", "symbol": "BTC-USDT", "level": "2"})
    assert "{price}" not in rendered


@pytest.mark.parametrize(
    "template", ["{price.__class__}", "{price[0]}", "{0}", "{}", "{price!s}", "{price:10}"]
)
def test_templates_cannot_reach_into_objects(template: str) -> None:
    with pytest.raises(TemplateError):
        check_template(template, RuleKind.PRICE_CROSS)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.floats(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children)
    ),
    max_leaves=8,
)
field_names = st.sampled_from(
    [
        "kind", "symbol", "level", "direction", "source", "low", "high", "on", "percent",
        "window_seconds", "interval", "min_quantity", "min_notional", "side", "account_id",
        "statuses", "currency", "condition", "amount", "name", "trigger", "cooldown_seconds",
        "message", "destination_ids", "expires_at", "enabled",
    ]
)  # fmt: skip


@settings(max_examples=200)
@given(
    st.sampled_from(list(EXAMPLES.values())),
    st.dictionaries(field_names | st.text(max_size=6), json_values, max_size=4),
)
def test_rule_bodies_are_accepted_or_refused_cleanly(
    base: dict[str, Any], changes: dict[str, Any]
) -> None:
    body = {**base, **changes}
    errors: list[Any] = []
    try:
        rule = rule_create_adapter.validate_python(body)
    except ValidationError as exc:
        errors = list(exc.errors())
    if errors:
        assert all(e["msg"] for e in errors)  # each refusal says why
        return
    # Accepted bodies survive a JSON round trip unchanged.
    dumped = rule.model_dump(mode="json")
    assert rule_create_adapter.validate_python(dumped) == rule


@pytest.mark.parametrize("kind", list(RuleKind))
def test_a_test_message_fills_every_placeholder_of_its_kind(kind: RuleKind) -> None:
    """What `POST /v1/rules/{id}/test` sends: a value for each placeholder, never a blank."""
    params = {k: v for k, v in EXAMPLES[kind].items() if k != "kind"}
    for price in ("69999.5", None):
        values = sample_values(kind, params, price)
        wanted = set(placeholders_for(kind)) - {"rule", "kind", "time"}
        assert set(values) == wanted and all(values.values()), (kind, values)
        text = default_text(kind.value, values)
        assert "()" not in text and "(was )" not in text and "  " not in text, text
