"""Destinations: Telegram chats, Apprise URLs and webhooks (their URLs and signing secrets
stored encrypted; URLs shown masked, secrets never)."""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from alerts.db.models import Destination, RuleDestination, RuleFallback, utcnow
from alerts.delivery.apprise_mask import mask_apprise_url
from alerts.delivery.apprise_urls import AppriseUrlError, UrlPolicy, check_apprise_url
from alerts.delivery.webhook_body import BodyTemplateError, check_body_template
from alerts.delivery.webhook_urls import WebhookUrlError, check_webhook_url
from alerts.security import SecretBox
from alerts.services.destination_schemas import (
    AppriseDestinationCreate,
    DestinationCreate,
    DestinationPublic,
    DestinationUpdate,
    WebhookDestinationCreate,
)
from alerts.services.errors import Conflict, InvalidInput, LimitReached, NotConfigured, NotFound
from alerts.services.telegram_chats import own_chat, require_proven

MAX_DESTINATIONS_PER_USER = 50
TELEGRAM = "telegram"
APPRISE = "apprise"
WEBHOOK = "webhook"


def _public(row: Destination) -> DestinationPublic:
    return DestinationPublic(
        id=row.id or 0,
        kind=row.kind if row.kind in (APPRISE, WEBHOOK) else TELEGRAM,
        name=row.name,
        chat_id=row.chat_id,
        # Masked again on every read: rows saved before the masking rules grew keep up.
        url=mask_apprise_url(row.url_masked) if row.url_masked is not None else None,
        signed=row.secret_sealed is not None,
        body=row.body,
        enabled=row.enabled,
        disabled_reason=row.disabled_reason,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _require_key(box: SecretBox, what: str) -> None:
    if not box.available:
        raise NotConfigured(
            f"this server cannot store {what}: its operator must set ALERTS_SECRET_KEY"
        )


def _seal_url(row: Destination, url: str, *, box: SecretBox, policy: UrlPolicy) -> str:
    """Check, seal and mask an Apprise destination's URL; the service's name."""
    if row.kind == WEBHOOK:
        _require_key(box, "webhook URLs")
        try:
            url = check_webhook_url(url, allow_private=policy.allow_private)
        except WebhookUrlError as exc:
            raise InvalidInput("url", str(exc)) from None
        row.url_sealed, row.url_masked = box.seal(url), mask_apprise_url(url)
        return "webhook"
    _require_key(box, "Apprise URLs")
    try:
        target = check_apprise_url(url, policy)
    except AppriseUrlError as exc:
        raise InvalidInput("url", str(exc)) from None
    row.url_sealed = box.seal(url.strip())
    row.url_masked = target.masked
    return target.service


def _set_webhook(
    row: Destination, given: set[str], secret: SecretStr | None, body: Any, *, box: SecretBox
) -> None:
    """A webhook's secret (sealed; None removes it) and body template (checked), if given."""
    if "secret" in given:
        if secret is not None:
            _require_key(box, "webhook secrets")
        row.secret_sealed = box.seal(secret.get_secret_value()) if secret is not None else None
    if "body" in given:
        if body is not None:
            try:
                check_body_template(body)
            except BodyTemplateError as exc:
                raise InvalidInput("body", str(exc)) from None
        row.body = body


def _get(session: Session, user_id: int, destination_id: int) -> Destination:
    row = session.get(Destination, destination_id)
    if row is None or row.user_id != user_id:
        raise NotFound("destination", destination_id)
    return row


def _commit(session: Session, row: Destination) -> None:
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"you already have a destination for Telegram chat {row.chat_id}") from None


def create_destination(
    session: Session,
    user_id: int,
    data: DestinationCreate,
    *,
    box: SecretBox,
    policy: UrlPolicy,
) -> DestinationPublic:
    """Add a destination; an Apprise URL is checked, encrypted and masked."""
    count = session.exec(
        select(func.count()).select_from(Destination).where(Destination.user_id == user_id)
    ).one()
    if count >= MAX_DESTINATIONS_PER_USER:
        raise LimitReached(
            f"you have {MAX_DESTINATIONS_PER_USER} destinations, the most a user may have; "
            "delete one you no longer use first"
        )
    row = Destination(user_id=user_id, kind=data.kind, name="")
    if isinstance(data, AppriseDestinationCreate):
        service = _seal_url(row, data.url.get_secret_value(), box=box, policy=policy)
        row.name = data.name or service
    elif isinstance(data, WebhookDestinationCreate):
        _seal_url(row, data.url.get_secret_value(), box=box, policy=policy)
        row.name = data.name or "webhook"
        _set_webhook(row, data.model_fields_set, data.secret, data.body, box=box)
    else:
        chat_id = data.chat_id if data.chat_id is not None else own_chat(session, user_id)
        require_proven(session, user_id, chat_id)
        row.chat_id = chat_id
        row.name = data.name or f"Telegram chat {chat_id}"
    _commit(session, row)
    return _public(row)


def list_destinations(session: Session, user_id: int) -> list[DestinationPublic]:
    """The user's destinations by id."""
    rows = session.exec(
        select(Destination).where(Destination.user_id == user_id).order_by(col(Destination.id))
    )
    return [_public(r) for r in rows]


def read_destination(session: Session, user_id: int, destination_id: int) -> DestinationPublic:
    """One of the user's destinations."""
    return _public(_get(session, user_id, destination_id))


def update_destination(
    session: Session,
    user_id: int,
    destination_id: int,
    data: DestinationUpdate,
    *,
    box: SecretBox,
    policy: UrlPolicy,
) -> DestinationPublic:
    """Rename, re-enable or repoint a destination (its kind stays)."""
    row = _get(session, user_id, destination_id)
    given = data.model_fields_set
    if "chat_id" in given and data.chat_id is not None:
        if row.kind != TELEGRAM:
            raise InvalidInput("chat_id", "chat_id applies to Telegram destinations only")
        require_proven(session, user_id, data.chat_id)
        row.chat_id = data.chat_id
    if "url" in given and data.url is not None:
        if row.kind not in (APPRISE, WEBHOOK):
            raise InvalidInput("url", "url applies to Apprise and webhook destinations only")
        _seal_url(row, data.url.get_secret_value(), box=box, policy=policy)
    if given & {"secret", "body"}:
        if row.kind != WEBHOOK:
            field = "secret" if "secret" in given else "body"
            raise InvalidInput(field, f"{field} applies to webhook destinations only")
        _set_webhook(row, given, data.secret, data.body, box=box)
    if data.name is not None:
        row.name = data.name
    if data.enabled is not None:
        if data.enabled and row.kind == TELEGRAM and row.chat_id is not None:
            require_proven(session, user_id, row.chat_id)  # e.g. disabled as never proven
        row.enabled = data.enabled
        if data.enabled:
            row.disabled_reason = None
    row.updated_at = utcnow()
    _commit(session, row)
    return _public(row)


def delete_destination(session: Session, user_id: int, destination_id: int) -> None:
    """Remove a destination that no rule uses."""
    row = _get(session, user_id, destination_id)
    for link, field in (
        (RuleDestination, "destination_ids"),
        (RuleFallback, "fallback_destination_ids"),
    ):
        users = session.exec(
            select(link.rule_id)
            .where(link.destination_id == destination_id)
            .order_by(col(link.rule_id))
            .limit(5)
        ).all()
        if users:
            ids = ", ".join(str(i) for i in users)
            raise Conflict(
                f"destination {destination_id} is used by rules ({ids}); "
                f"remove it from their {field} first"
            )
    session.delete(row)
    session.commit()


def owned_destination_ids(
    session: Session, user_id: int, ids: list[int], *, field: str = "destination_ids"
) -> None:
    """Raise InvalidInput (about `field`) unless every id names one of the user's
    destinations."""
    if not ids:
        return
    found = set(
        session.exec(
            select(Destination.id).where(
                Destination.user_id == user_id, col(Destination.id).in_(ids)
            )
        )
    )
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidInput(
            field, f"destination {missing[0]} does not exist (see GET /v1/destinations)"
        )
