"""Users (admin token) and the caller's own profile."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from alerts.services import users
from alerts.services.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    UserCreate,
    UserCreated,
    UserPublic,
    UserSettingsUpdate,
    UserUpdate,
)
from api.deps import (
    AdminDep,
    ContextDep,
    Cursor,
    IdPath,
    Limit,
    NowDep,
    SessionDep,
    UserIdDep,
    in_db,
)
from api.errors import CONFLICT, NOT_FOUND

router = APIRouter(prefix="/users", tags=["users"], responses={**NOT_FOUND})


@router.get("/me", response_model=UserPublic)
async def read_me(context: ContextDep, session: SessionDep, user_id: UserIdDep) -> UserPublic:
    """The user the API key belongs to."""
    return await in_db(context, users.read_user, session, user_id)


@router.patch("/me", response_model=UserPublic)
async def update_me(
    context: ContextDep,
    session: SessionDep,
    user_id: UserIdDep,
    now: NowDep,
    body: UserSettingsUpdate,
) -> UserPublic:
    """Set your time zone and quiet hours (`quiet_hours: null` turns them off). Alerts of
    non-urgent rules that fire in quiet hours are held, and go out as one summary per
    destination when they end."""
    return await in_db(context, users.update_settings, session, user_id, body, now=now)


@router.post(
    "",
    response_model=UserCreated,
    status_code=status.HTTP_201_CREATED,
    dependencies=[AdminDep],
    responses={**CONFLICT},
)
async def create_user(context: ContextDep, session: SessionDep, body: UserCreate) -> UserCreated:
    """Create a user and a first API key. The key is in this response only: store it."""
    return await in_db(context, users.create_user, session, body)


@router.get("", response_model=list[UserPublic], dependencies=[AdminDep])
async def list_users(
    context: ContextDep, session: SessionDep, limit: Limit = 50, cursor: Cursor = None
) -> list[UserPublic]:
    """Users by id; pass the last id seen as `cursor` for the next page."""
    return await in_db(
        context, users.list_users, session, after=int(cursor) if cursor else None, limit=limit
    )


@router.get("/{user_id}", response_model=UserPublic, dependencies=[AdminDep])
async def read_user(context: ContextDep, session: SessionDep, user_id: IdPath) -> UserPublic:
    """One user."""
    return await in_db(context, users.read_user, session, user_id)


@router.patch(
    "/{user_id}", response_model=UserPublic, dependencies=[AdminDep], responses={**CONFLICT}
)
async def update_user(
    context: ContextDep, session: SessionDep, user_id: IdPath, now: NowDep, body: UserUpdate
) -> UserPublic:
    """Rename a user, or set their Telegram user id, time zone or quiet hours."""
    return await in_db(context, users.update_user, session, user_id, body, now=now)


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT, dependencies=[AdminDep])
async def delete_user(context: ContextDep, session: SessionDep, user_id: IdPath) -> Response:
    """Delete a user and everything they own."""
    await in_db(context, users.delete_user, session, user_id)
    context.keys.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{user_id}/api-keys",
    response_model=ApiKeyCreated,
    status_code=status.HTTP_201_CREATED,
    dependencies=[AdminDep],
)
async def create_key(
    context: ContextDep, session: SessionDep, user_id: IdPath, body: ApiKeyCreate
) -> ApiKeyCreated:
    """Another API key for the user, shown once."""
    return await in_db(context, users.create_key, session, user_id, body.name)


@router.get("/{user_id}/api-keys", response_model=list[ApiKeyPublic], dependencies=[AdminDep])
async def list_keys(
    context: ContextDep, session: SessionDep, user_id: IdPath
) -> list[ApiKeyPublic]:
    """The user's keys (hints only)."""
    return await in_db(context, users.list_keys, session, user_id)


@router.delete(
    "/{user_id}/api-keys/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[AdminDep],
)
async def delete_key(
    context: ContextDep, session: SessionDep, user_id: IdPath, key_id: IdPath
) -> Response:
    """Revoke a key (other processes stop accepting it within 10 seconds)."""
    await in_db(context, users.delete_key, session, user_id, key_id)
    context.keys.clear()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
