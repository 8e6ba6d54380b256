"""The access token: where it comes from, and the dependency that asks every request for
it (``Authorization: Bearer <token>``, or the UI's token cookie)."""
from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from otel_monitor.settings import SETTINGS, read_setting

TOKEN_ENV = SETTINGS["ui_token"].env
TOKEN_COOKIE = "otel_monitor_token"  # set by the UI's guard (dash_ui.server) on ?token=

_bearer = HTTPBearer(auto_error=False, description=f"the access token (${TOKEN_ENV})")


def resolve_token(token: str | None) -> str | None:
    return token if token is not None else read_setting("ui_token")


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
