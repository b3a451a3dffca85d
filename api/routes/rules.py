"""Rules of every kind: create, list, read, update, delete, test-send."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status

from alerts.domain.rules import RuleKind
from alerts.services import rules
from alerts.services.rule_schemas import EXAMPLES, RuleCreate, RulePage, RulePublic, RuleUpdate
from alerts.services.schemas import EventPublic
from api.deps import ContextDep, Cursor, IdPath, Limit, NowDep, SessionDep, UserIdDep, in_db
from api.errors import CONFLICT, NOT_FOUND

router = APIRouter(prefix="/rules", tags=["rules"], responses={**NOT_FOUND})

_CREATE_EXAMPLES = {
    kind.value: {"summary": kind.value, "value": example} for kind, example in EXAMPLES.items()
}
SymbolQuery = Annotated[
    str | None,
    Query(pattern=r"^[A-Za-z0-9]{1,16}-[A-Za-z0-9]{1,16}$", description="e.g. BTC-USDT"),
]


@router.post(
    "", response_model=RulePublic, status_code=status.HTTP_201_CREATED, responses={**CONFLICT}
)
async def create_rule(
    context: ContextDep,
    session: SessionDep,
    user_id: UserIdDep,
    now: NowDep,
    body: Annotated[RuleCreate, Body(openapi_examples=_CREATE_EXAMPLES)],
) -> RulePublic:
    """Create a rule; `kind` picks the fields (see the examples, one per kind)."""
    return await in_db(
        context,
        rules.create_rule,
        session,
        user_id,
        body,
        now=now,
        max_rules=context.settings.max_rules_per_user,
    )


@router.get("", response_model=RulePage)
async def list_rules(
    context: ContextDep,
    session: SessionDep,
    user_id: UserIdDep,
    kind: RuleKind | None = None,
    symbol: SymbolQuery = None,
    enabled: bool | None = None,
    account_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> RulePage:
    """The caller's rules in creation order, filtered, one page at a time."""
    return await in_db(
        context,
        rules.list_rules,
        session,
        user_id,
        kind=kind,
        symbol=symbol.upper() if symbol else None,
        enabled=enabled,
        account_id=account_id,
        after=int(cursor) if cursor else None,
        limit=limit,
    )


@router.get("/{rule_id}", response_model=RulePublic)
async def read_rule(
    context: ContextDep, session: SessionDep, user_id: UserIdDep, rule_id: IdPath
) -> RulePublic:
    """One rule."""
    return await in_db(context, rules.read_rule, session, user_id, rule_id)


@router.patch("/{rule_id}", response_model=RulePublic)
async def update_rule(
    context: ContextDep,
    session: SessionDep,
    user_id: UserIdDep,
    now: NowDep,
    rule_id: IdPath,
    body: RuleUpdate,
) -> RulePublic:
    """Change some fields; the result is validated like a new rule. The kind cannot change."""
    return await in_db(context, rules.update_rule, session, user_id, rule_id, body, now=now)


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_rule(
    context: ContextDep, session: SessionDep, user_id: UserIdDep, now: NowDep, rule_id: IdPath
) -> Response:
    """Delete a rule; events it fired stay, with `rule_id` null."""
    await in_db(context, rules.delete_rule, session, user_id, rule_id, now=now)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{rule_id}/test",
    response_model=EventPublic,
    status_code=status.HTTP_202_ACCEPTED,
    responses={**CONFLICT},
)
async def test_rule(
    context: ContextDep, session: SessionDep, user_id: UserIdDep, now: NowDep, rule_id: IdPath
) -> EventPublic:
    """Queue a test message to the rule's destinations, through the same path as alerts."""
    return await in_db(context, rules.test_rule, session, user_id, rule_id, now=now)
