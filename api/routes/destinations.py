"""Destinations: Telegram chats and Apprise URLs."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from alerts.services import destinations, telegram_chats
from alerts.services.destination_schemas import (
    DestinationCreate,
    DestinationList,
    DestinationPublic,
    DestinationUpdate,
    TelegramLinkCreated,
)
from api.deps import ContextDep, IdPath, NowDep, SessionDep, UserIdDep, in_db
from api.errors import CONFLICT, NOT_FOUND, UNAVAILABLE

router = APIRouter(prefix="/destinations", tags=["destinations"], responses={**NOT_FOUND})


@router.post(
    "",
    response_model=DestinationPublic,
    status_code=status.HTTP_201_CREATED,
    responses={**CONFLICT, **UNAVAILABLE},
)
async def create_destination(
    context: ContextDep, session: SessionDep, user_id: UserIdDep, body: DestinationCreate
) -> DestinationPublic:
    """Add a Telegram chat you proved yours (no `chat_id`: your private chat with the bot) or
    an Apprise URL (checked, stored encrypted, shown masked)."""
    return await in_db(
        context,
        destinations.create_destination,
        session,
        user_id,
        body,
        box=context.box,
        policy=context.url_policy,
    )


@router.post(
    "/telegram-links",
    response_model=TelegramLinkCreated,
    status_code=status.HTTP_201_CREATED,
    responses={**CONFLICT},
)
async def create_telegram_link(
    context: ContextDep, session: SessionDep, user_id: UserIdDep, now: NowDep
) -> TelegramLinkCreated:
    """A single-use code, valid 10 minutes: `/link CODE` sent in a chat (in a group or channel,
    by an administrator) makes that chat one of your destinations."""
    return await in_db(context, telegram_chats.new_link_code, session, user_id, now=now)


@router.get("", response_model=DestinationList)
async def list_destinations(
    context: ContextDep, session: SessionDep, user_id: UserIdDep
) -> DestinationList:
    """All the caller's destinations."""
    return DestinationList(
        items=await in_db(context, destinations.list_destinations, session, user_id)
    )


@router.get("/{destination_id}", response_model=DestinationPublic)
async def read_destination(
    context: ContextDep, session: SessionDep, user_id: UserIdDep, destination_id: IdPath
) -> DestinationPublic:
    """One destination."""
    return await in_db(context, destinations.read_destination, session, user_id, destination_id)


@router.patch(
    "/{destination_id}",
    response_model=DestinationPublic,
    responses={**CONFLICT, **UNAVAILABLE},
)
async def update_destination(
    context: ContextDep,
    session: SessionDep,
    user_id: UserIdDep,
    destination_id: IdPath,
    body: DestinationUpdate,
) -> DestinationPublic:
    """Rename, re-enable, or point it at another chat or URL."""
    return await in_db(
        context,
        destinations.update_destination,
        session,
        user_id,
        destination_id,
        body,
        box=context.box,
        policy=context.url_policy,
    )


@router.delete("/{destination_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**CONFLICT})
async def delete_destination(
    context: ContextDep, session: SessionDep, user_id: UserIdDep, destination_id: IdPath
) -> Response:
    """Delete a destination that no rule uses (409 names the rules that do)."""
    await in_db(context, destinations.delete_destination, session, user_id, destination_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
