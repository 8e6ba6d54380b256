"""The access token: where it comes from, and the dependency that asks every request for
it (``Authorization: Bearer <token>``, or the UI's token cookie)."""
from __future__ import annotations

import hmac
import os
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

TOKEN_ENV = "OTEL_MONITOR_UI_TOKEN"
TOKEN_COOKIE = "otel_monitor_token"  # set by the UI's guard (dash_ui.server) on ?token=

_bearer = HTTPBearer(auto_error=False, description=f"the access token (${TOKEN_ENV})")


def resolve_token(token: str | None) -> str | None:
    return token if token is not None else (os.environ.get(TOKEN_ENV) or None)


def token_required(token: str) -> Any:
    """A dependency (for ``FastAPI(dependencies=[...])``) refusing a request without
    ``token`` with a 401."""

    def valid(given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), token.encode())

    def require_token(request: Request,
                      credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
                      ) -> None:
        if not (valid(credentials.credentials if credentials else None)
                or valid(request.cookies.get(TOKEN_COOKIE))):
            raise HTTPException(401, "a valid access token is required "
                                     "(Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})

    return Depends(require_token)
