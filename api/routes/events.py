"""What fired, with each delivery's state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from alerts.services import events
from alerts.services.schemas import EventPage, EventPublic
from api.deps import BigIdPath, ContextDep, Cursor, Limit, SessionDep, UserIdDep, in_db
from api.errors import NOT_FOUND

router = APIRouter(prefix="/events", tags=["events"], responses={**NOT_FOUND})


@router.get("", response_model=EventPage)
async def list_events(
    context: ContextDep,
    session: SessionDep,
    user_id: UserIdDep,
    rule_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> EventPage:
    """The caller's events, newest first, optionally for one rule."""
    return await in_db(
        context,
        events.list_events,
        session,
        user_id,
        rule_id=rule_id,
        before=int(cursor) if cursor else None,
        limit=limit,
    )


@router.get("/{event_id}", response_model=EventPublic)
async def read_event(
    context: ContextDep, session: SessionDep, user_id: UserIdDep, event_id: BigIdPath
) -> EventPublic:
    """One event with its deliveries."""
    return await in_db(context, events.read_event, session, user_id, event_id)
