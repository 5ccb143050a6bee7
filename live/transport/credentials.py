"""Where a client may put its credentials, in the host's own conventions, and which one counts.

One rule decides between them: every credential a client presents explicitly (query parameters
and headers) must be the same value. A dashboard JWT beside an API key, two different API keys,
or a parameter repeated with different values is refused as conflicting (`UNAUTHORIZED`);
repeating the same value is fine. The dashboard cookie is ambient (a browser sends it whether
the client meant to or not), so it is used only when nothing explicit was presented.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from ..errors import AuthError, ErrorCode

DASHBOARD_COOKIE = "astrbot_dashboard_jwt"


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str | None  # dashboard JWT
    api_key: str | None
    username: str | None


def _looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2 and value.startswith("eyJ")


def _presented(conn: HTTPConnection) -> list[tuple[str, str, str]]:
    """(kind, where, value) of every non-empty credential in the query and headers."""
    query, headers = conn.query_params, conn.headers
    found: list[tuple[str, str, str]] = []
    for name, kind in (("token", "token"), ("api_key", "api_key"), ("key", "api_key")):
        found += [(kind, f"?{name}=", v.strip()) for v in query.getlist(name)]
    found += [("api_key", "X-API-Key", v.strip()) for v in headers.getlist("x-api-key")]
    for auth in headers.getlist("authorization"):
        scheme, _, value = auth.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer":
            found.append(("token" if _looks_like_jwt(value) else "api_key", "Authorization: Bearer", value))
        elif scheme.lower() == "apikey":
            found.append(("api_key", "Authorization: ApiKey", value))
    return [item for item in found if item[2]]


def extract(conn: HTTPConnection) -> Credentials:
    """`?token=`, `Authorization: Bearer <jwt>` or the dashboard cookie for a JWT; `?api_key=`,
    `?key=`, `X-API-Key` or `Authorization: Bearer|ApiKey` for an API key. Raises `AuthError`
    (`UNAUTHORIZED`) for conflicting credentials and (`BAD_USER`) for conflicting usernames."""
    presented = _presented(conn)
    if len({(kind, value) for kind, _, value in presented}) > 1:
        where = ", ".join(dict.fromkeys(where for _, where, _ in presented))
        raise AuthError(
            ErrorCode.UNAUTHORIZED,
            f"conflicting credentials ({where}): send one dashboard token or one API key",
        )
    usernames = set(conn.query_params.getlist("username"))
    if len(usernames) > 1:
        raise AuthError(ErrorCode.BAD_USER, "username is given more than once with different values")
    username = usernames.pop() if usernames else None
    if not presented:
        cookie = (conn.cookies.get(DASHBOARD_COOKIE) or "").strip()
        return Credentials(token=cookie or None, api_key=None, username=username)
    kind, _, value = presented[0]
    return Credentials(
        token=value if kind == "token" else None,
        api_key=value if kind == "api_key" else None,
        username=username,
    )
