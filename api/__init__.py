"""The REST API: `create_app(settings)` builds it; `alerts api` serves it."""

from api.app import create_app

__all__ = ["create_app"]
