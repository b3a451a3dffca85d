"""xRocket accounts: verified on the exchange, stored encrypted, never shown."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from alerts.services import accounts
from alerts.services.schemas import AccountCreate, AccountList, AccountPublic, AccountUpdate
from api.deps import ContextDep, IdPath, SessionDep, UserIdDep, in_db
from api.errors import CONFLICT, NOT_FOUND, UNAVAILABLE

router = APIRouter(prefix="/accounts", tags=["accounts"], responses={**NOT_FOUND})


@router.post(
    "",
    response_model=AccountPublic,
    status_code=status.HTTP_201_CREATED,
    responses={**CONFLICT, **UNAVAILABLE},
)
async def create_account(
    context: ContextDep, user_id: UserIdDep, body: AccountCreate
) -> AccountPublic:
    """Link an account: the token is checked with the exchange (422 if refused, 503 if the
    exchange is unreachable), then stored encrypted."""
    return await accounts.link_account(
        context.db, user_id, body, box=context.box, verify=context.verify
    )


@router.get("", response_model=AccountList)
async def list_accounts(
    context: ContextDep, session: SessionDep, user_id: UserIdDep
) -> AccountList:
    """All the caller's accounts."""
    return AccountList(items=await in_db(context, accounts.list_accounts, session, user_id))


@router.get("/{account_id}", response_model=AccountPublic)
async def read_account(
    context: ContextDep, session: SessionDep, user_id: UserIdDep, account_id: IdPath
) -> AccountPublic:
    """One account."""
    return await in_db(context, accounts.read_account, session, user_id, account_id)


@router.patch("/{account_id}", response_model=AccountPublic, responses={**CONFLICT, **UNAVAILABLE})
async def update_account(
    context: ContextDep, user_id: UserIdDep, account_id: IdPath, body: AccountUpdate
) -> AccountPublic:
    """Rename, switch order/balance notifications, or replace the token (verified first)."""
    return await accounts.update_account(
        context.db, user_id, account_id, body, box=context.box, verify=context.verify
    )


@router.delete("/{account_id}", status_code=status.HTTP_204_NO_CONTENT, responses={**CONFLICT})
async def delete_account(
    context: ContextDep, session: SessionDep, user_id: UserIdDep, account_id: IdPath
) -> Response:
    """Unlink an account that no rule uses (409 names the rules that do)."""
    await in_db(context, accounts.delete_account, session, user_id, account_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
