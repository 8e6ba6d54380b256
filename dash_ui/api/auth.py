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


def token_given(token: str, bearer: str | None, cookie: str | None) -> bool:
    """Whether a request carries ``token``: as its bearer credentials, or in the UI's
    token cookie (compared in constant time)."""
    return any(given is not None and hmac.compare_digest(given.encode(), token.encode())
               for given in (bearer, cookie))


def bearer_of(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <credentials>`` header, else None."""
    scheme, _, value = (authorization or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def token_required(token: str) -> Any:
    """A dependency (for ``FastAPI(dependencies=[...])``) refusing a request without
    ``token`` with a 401."""

    def require_token(request: Request,
                      credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
                      ) -> None:
        if not token_given(token, credentials.credentials if credentials else None,
                           request.cookies.get(TOKEN_COOKIE)):
            raise HTTPException(401, "a valid access token is required "
                                     "(Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})

    return Depends(require_token)
