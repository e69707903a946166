"""What a route gets injected: the app's settings and Redis, and the caller's tenant (from its API key)."""

from __future__ import annotations

from typing import Annotated

import redis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from synth.api.auth import tenant_for
from synth.api.errors import ApiError
from synth.api.reports import Reports
from synth.api.settings import ApiSettings

bearer = HTTPBearer(auto_error=False, description="An API key from `synth api key create TENANT`.")


def settings_of(request: Request) -> ApiSettings:
    settings: ApiSettings = request.app.state.settings
    return settings


def conn_of(request: Request) -> redis.Redis:
    conn: redis.Redis = request.app.state.redis
    return conn


def reports_of(request: Request) -> Reports:
    reports: Reports = request.app.state.reports
    return reports


def tenant_of(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> str:
    if credentials is None:
        raise ApiError(401, "missing API key: send `Authorization: Bearer <key>`")
    tenant = tenant_for(conn_of(request), credentials.credentials)
    if tenant is None:
        raise ApiError(401, "unknown or revoked API key")
    return tenant


Settings = Annotated[ApiSettings, Depends(settings_of)]
Conn = Annotated[redis.Redis, Depends(conn_of)]
Tenant = Annotated[str, Depends(tenant_of)]
JobReports = Annotated[Reports, Depends(reports_of)]
