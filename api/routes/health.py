"""Liveness, readiness and metrics: unauthenticated, for load balancers and Prometheus."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy import text

from api.deps import ContextDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    checks: dict[str, dict[str, Any]]


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(context: ContextDep) -> JSONResponse:
    """Whether the service can do its job: the database, and each feed this process runs."""

    def database() -> tuple[bool, dict[str, Any]]:
        try:
            with context.db.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001  (any failure means "not ready"; say which)
            return False, {"error": type(exc).__name__}
        return True, {"dialect": context.db.dialect}

    checks: dict[str, dict[str, Any]] = {}
    ready = True
    for name, check in {"database": database, **context.readiness}.items():
        ok, detail = await run_in_threadpool(check)
        checks[name] = {"ok": ok, **detail}
        ready = ready and ok
    body = Readiness(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", response_class=Response)
def metrics(context: ContextDep) -> Response:
    """Prometheus metrics of this process."""
    # A plain `def`: a scrape asks the database for the queue's depth, in the thread pool.
    return Response(context.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
