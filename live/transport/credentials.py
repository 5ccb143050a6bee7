"""Where a client may put its credentials, in the host's own conventions."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

DASHBOARD_COOKIE = "astrbot_dashboard_jwt"


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str | None  # dashboard JWT
    api_key: str | None
    username: str | None


def _looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2 and value.startswith("eyJ")


def extract(conn: HTTPConnection) -> Credentials:
    """`?token=` or the dashboard cookie for a JWT; `?api_key=`, `X-API-Key` or
    `Authorization: Bearer|ApiKey` for an API key (a Bearer JWT counts as a token)."""
    query, headers = conn.query_params, conn.headers
    token = query.get("token") or None
    api_key = query.get("api_key") or query.get("key") or headers.get("x-api-key") or None
    auth = headers.get("authorization", "").strip()
    scheme, _, value = auth.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        if _looks_like_jwt(value):
            token = token or value
        else:
            api_key = api_key or value
    elif scheme.lower() == "apikey" and value:
        api_key = api_key or value
    if token is None and api_key is None:
        token = conn.cookies.get(DASHBOARD_COOKIE) or None
    return Credentials(
        token=token.strip() if token else None,
        api_key=api_key.strip() if api_key else None,
        username=query.get("username"),
    )
