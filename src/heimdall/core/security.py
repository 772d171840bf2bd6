"""Bearer-token guard for mutating endpoints (enabled when HEIMDALL_API_TOKENS is set)."""

from __future__ import annotations

import secrets

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from heimdall.core.settings import get_settings

_bearer = HTTPBearer(auto_error=False)


async def require_token(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> None:
    tokens = get_settings().api_tokens
    if not tokens:
        return
    if credentials is None or not any(
        secrets.compare_digest(credentials.credentials, t.get_secret_value()) for t in tokens
    ):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
