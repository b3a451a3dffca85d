"""Service errors, named by what went wrong for the caller; `api/errors.py` maps them to HTTP
and the bot to replies. Messages are written for people and never contain a secret."""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error a service reports to its caller."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    """The resource does not exist, or belongs to someone else (the caller cannot tell which)."""

    code = "not_found"

    def __init__(self, resource: str, resource_id: object) -> None:
        super().__init__(f"{resource} {resource_id} not found")


class InvalidInput(ServiceError):
    """A request that is well-formed but names something unusable; `field` says which part."""

    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Conflict(ServiceError):
    """The request clashes with existing data (a duplicate, or a resource still in use)."""

    code = "conflict"


class LimitReached(Conflict):
    """The user has as many of something as the service allows (rules, destinations...)."""

    code = "limit_reached"


class TokenRejected(ServiceError):
    """The exchange refused an account token; `code` names why (invalid, blocked, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ExchangeUnavailable(ServiceError):
    """The exchange could not be reached to check something; trying again later may work."""

    code = "exchange_unavailable"


class NotConfigured(ServiceError):
    """The operator has not configured what this request needs (e.g. ALERTS_SECRET_KEY)."""

    code = "not_configured"
