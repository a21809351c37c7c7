"""Unauthenticated operational endpoints: /version, /healthz, /metrics."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from datastore_gateway.api.deps import StateDep
from datastore_gateway.schemas import API_VERSION, Health, VersionInfo

router = APIRouter(tags=["Operations"])

DIST = "datastore-gateway"


@router.get("/version")
async def get_version() -> VersionInfo:
    return VersionInfo(name=DIST, version=version(DIST), api_version=API_VERSION)


@router.get("/healthz", responses={503: {"model": Health, "description": "Broker unreachable"}})
async def healthz(state: StateDep) -> JSONResponse:
    """200 while the broker connection is up (archive requests can be accepted), else 503."""
    health = Health(
        status="ok" if state.broker_connected else "degraded",
        broker_connected=state.broker_connected,
        vo=state.vo.known if state.vo is not None else None,
    )
    return JSONResponse(health.model_dump(), status_code=200 if state.broker_connected else 503)


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
