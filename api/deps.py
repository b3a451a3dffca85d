"""Dependencies as short `Annotated` aliases: the context, a session, the caller."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from alerts.security import same_secret
from alerts.services import users
from api.context import AppContext
from api.errors import Forbidden, TooManyRequests, Unauthenticated

MAX_ID = 2**31 - 1
MAX_BIG_ID = 2**63 - 1

_bearer = HTTPBearer(
    auto_error=False,
    description="The admin token (ALERTS_ADMIN_TOKEN) or a user's API key.",
)


# Dependencies without I/O are `async def`: FastAPI runs a plain `def` dependency in the
# thread pool, and each such hop costs a thread hand-off per request.


async def get_context(request: Request) -> AppContext:
    """The app's shared context."""
    context: AppContext = request.app.state.context
    return context


ContextDep = Annotated[AppContext, Depends(get_context)]

P = ParamSpec("P")
T = TypeVar("T")


async def in_db(
    context: AppContext, func: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run database work: inline on SQLite, whose work is CPU-bound in this process (a thread
    hand-off only adds cost and halves the request rate); in the thread pool on PostgreSQL,
    where waiting on the network must not hold up other requests."""
    if context.db.dialect == "sqlite":
        return func(*args, **kwargs)
    return await run_in_threadpool(func, *args, **kwargs)


async def get_session(context: ContextDep) -> AsyncIterator[Session]:
    """A database session for one request (it connects lazily, in the route's thread)."""
    with context.db.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


@dataclass(frozen=True)
class Caller:
    """Who is asking: the admin, or one user."""

    admin: bool
    user_id: int | None


async def get_caller(
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Authenticate the bearer token (keys seen recently are answered from memory)."""
    if credentials is None:
        raise Unauthenticated("send Authorization: Bearer <admin token or API key>")
    key = credentials.credentials
    admin = context.admin_token
    if admin is not None and same_secret(key, admin):
        _count(context, key)
        return Caller(admin=True, user_id=None)
    user_id = context.keys.get(key, time.monotonic())
    if user_id is None:
        user_id = await in_db(context, _lookup, context, key)
        if user_id is None:
            raise Unauthenticated("the bearer token is not a valid API key")
        context.keys.put(key, user_id, time.monotonic())
    _count(context, key)
    return Caller(admin=False, user_id=user_id)


def _count(context: AppContext, key: str) -> None:
    wait = context.limiter.wait(key)
    if wait is not None:
        raise TooManyRequests(
            f"over {context.limiter.per_minute} requests a minute for this key; "
            f"try again in {wait} s",
            retry_after=wait,
        )


def _lookup(context: AppContext, key: str) -> int | None:
    with context.db.session() as session:
        return users.user_for_key(session, key)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_user_id(caller: CallerDep) -> int:
    """The calling user's id; the admin token is for managing users only."""
    if caller.user_id is None:
        raise Forbidden(
            "the admin token manages users; this endpoint needs a user's API key "
            "(create a user with POST /v1/users)"
        )
    return caller.user_id


async def require_admin(caller: CallerDep) -> None:
    """Only the admin token passes."""
    if not caller.admin:
        raise Forbidden("this endpoint needs the admin token")


async def get_now(context: ContextDep) -> datetime:
    """The current time from the app's clock."""
    return context.clock()


UserIdDep = Annotated[int, Depends(get_user_id)]
AdminDep = Depends(require_admin)
NowDep = Annotated[datetime, Depends(get_now)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
BigIdPath = Annotated[int, Path(ge=1, le=MAX_BIG_ID)]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size.")]
Cursor = Annotated[
    str | None,
    Query(
        pattern=r"^[0-9]{1,18}$",
        description="The `next_cursor` of the previous page; omit for the first page.",
    ),
]
