"""Every error the API answers with, mapped to HTTP in this one place.

Bodies are `{"detail": "...", "code": "..."}`, except 422, which is FastAPI's list of
`{loc, msg, type}` (without the offending input: it may be a token or an Apprise URL).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DataError, OperationalError

from alerts.services.errors import (
    Conflict,
    ExchangeUnavailable,
    InvalidInput,
    NotConfigured,
    NotFound,
    ServiceError,
    TokenRejected,
)

logger = logging.getLogger("alerts.api")


class ApiError(Exception):
    """An HTTP-level refusal raised by the API itself (auth, size)."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(ApiError):
    status = 401
    code = "unauthenticated"


class Forbidden(ApiError):
    status = 403
    code = "forbidden"


class TooManyRequests(ApiError):
    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ErrorBody(BaseModel):
    """What went wrong, for a person, and a stable code for a program."""

    detail: str
    code: str


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationBody(BaseModel):
    """Every problem with the request, each with where it is and what to do."""

    detail: list[FieldError]


def _error(status: int, description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _error(401, "No bearer token, or not a valid one."),
    403: _error(403, "A user's key where the admin token is needed, or the other way round."),
    413: _error(413, "The request body is too large."),
    429: {
        "model": ErrorBody,
        "description": "Over ALERTS_API_REQUESTS_PER_MINUTE for this key; see Retry-After.",
        "headers": {
            "Retry-After": {
                "description": "Seconds to wait before trying again.",
                "schema": {"type": "integer"},
            }
        },
    },
    422: {"model": ValidationBody, "description": "The request is invalid; `detail` says why."},
}
Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: Responses = {404: _error(404, "No such resource among the caller's.")}
CONFLICT: Responses = {409: _error(409, "Clashes with existing data, or the resource is in use.")}
UNAVAILABLE: Responses = {
    503: _error(503, "The exchange is unreachable, or the server lacks a setting.")
}

_STATUS: dict[type[ServiceError], int] = {
    NotFound: 404,
    Conflict: 409,
    ExchangeUnavailable: 503,
    NotConfigured: 503,
}


def _body(
    status: int, message: str, code: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse({"detail": message, "code": code}, status_code=status, headers=headers)


def _clean(errors: Any, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    cleaned = []
    for err in errors:
        message = str(err.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        loc = [*prefix, *err.get("loc", ())]
        cleaned.append({"loc": loc, "msg": message, "type": str(err.get("type", "invalid"))})
    return cleaned


def _validation(detail: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Register the mapping of every error type on `app`."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        if isinstance(exc, TooManyRequests):
            headers = {"Retry-After": str(exc.retry_after)}
            return _body(exc.status, exc.message, exc.code, headers)
        return _body(exc.status, exc.message, exc.code)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation(_clean(exc.errors()))

    @app.exception_handler(ValidationError)
    async def _model_invalid(_request: Request, exc: ValidationError) -> JSONResponse:
        # A merged update, validated as a whole inside a service.
        return _validation(_clean(exc.errors(), ("body",)))

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> JSONResponse:
        if isinstance(exc, InvalidInput):
            return _validation([{"loc": ["body", exc.field], "msg": exc.message, "type": exc.code}])
        if isinstance(exc, TokenRejected):
            return _validation([{"loc": ["body", "token"], "msg": exc.message, "type": exc.code}])
        status = next((s for t, s in _STATUS.items() if isinstance(exc, t)), 400)
        return _body(status, exc.message, exc.code)

    @app.exception_handler(DataError)
    async def _data_error(_request: Request, exc: DataError) -> JSONResponse:
        logger.info("refused a value the database cannot store: %s", type(exc.orig).__name__)
        return _validation(
            [
                {
                    "loc": ["body"],
                    "msg": "a value is out of range or holds characters that cannot be stored",
                    "type": "unstorable",
                }
            ]
        )

    @app.exception_handler(OperationalError)
    async def _database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        logger.error("database unavailable: %s", type(exc.orig).__name__)
        return _body(503, "the database is unavailable; try again shortly", "database_unavailable")
