"""Who is connecting, checked exactly the way the host checks it.

Dashboard JWTs are verified with the host's own secret; API keys go through
the host's Open API service (hash lookup, revocation, scopes); conversation
ownership uses the host's WebChat session table.

Names and ids are held to one strict spelling before they reach the host, because the host uses
them verbatim: a username and a conversation id become `webchat!<username>!<id>`, the sender id
compared with `admins_id`, and a folder name under `data/workspaces/`.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from typing import Any

import jwt

from ..errors import AuthError, ErrorCode

LIVE_NAMESPACE = uuid.UUID("5b0e9c8e-5d7e-4f43-9c3c-6c6976654d64")

# The host's WebChat ids are lowercase uuid4 strings, ours uuid5: both fit. No upper case (one
# spelling per conversation), no `!` (the host splits `webchat!<user>!<id>` on it), no `_`, `/`,
# `.` or other characters: the host's workspace folder (`data/workspaces/`) replaces every
# character outside `A-Za-z0-9._-` by `_` and joins user and id with `_`, so an id with neither
# `_` nor those characters can never share a folder with another user's id.
CONVERSATION_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")
MAX_CONVERSATION_ID_CHARS = 128
# API-key usernames: letters and digits of any script, and these, starting with a letter or digit.
# 64 characters keep the host's workspace folder name far below the file-system limit of 255 bytes.
USERNAME_PUNCTUATION = frozenset("._-@")
MAX_USERNAME_CHARS = 64


def check_conversation_id(cid: str) -> str:
    """`cid` if it has the one accepted spelling, else `AuthError` (`INVALID_MESSAGE_FORMAT`)."""
    if not CONVERSATION_ID.fullmatch(cid):
        raise AuthError(
            ErrorCode.INVALID_MESSAGE_FORMAT,
            f"conversation_id must be 1-{MAX_CONVERSATION_ID_CHARS} characters of a-z, 0-9 and '-', "
            "starting with a letter or digit (a WebChat conversation id is one)",
        )
    return cid


def _username_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LN" or ch in USERNAME_PUNCTUATION


def check_username(name: str) -> str:
    """`name` if an API-key client may speak as it, else `AuthError` (`BAD_USER`)."""
    if not (
        0 < len(name) <= MAX_USERNAME_CHARS
        and unicodedata.category(name[0])[0] in "LN"
        and all(_username_char(ch) for ch in name)
    ):
        raise AuthError(
            ErrorCode.BAD_USER,
            f"username must be 1-{MAX_USERNAME_CHARS} letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit",
        )
    return name


def default_conversation_id(username: str) -> str:
    """A stable conversation per user, so memory survives reconnects."""
    return str(uuid.uuid5(LIVE_NAMESPACE, f"live:{username}"))


class HostAccess:
    def __init__(self, app: Any) -> None:
        self._app = app

    def verify_dashboard_token(self, token: str) -> str:
        try:
            payload = jwt.decode(
                token, self._app.state.jwt_secret, algorithms=["HS256"], options={"require": ["exp"]}
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(ErrorCode.UNAUTHORIZED, "Token expired") from None
        except jwt.MissingRequiredClaimError:
            raise AuthError(ErrorCode.UNAUTHORIZED, "Invalid token: it has no exp") from None
        except jwt.InvalidTokenError:
            raise AuthError(ErrorCode.UNAUTHORIZED, "Invalid token") from None
        # PyJWT reads exp with int(), so "9999999999" would pass: the claim must be a JSON number.
        exp = payload.get("exp") if isinstance(payload, dict) else None
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise AuthError(ErrorCode.UNAUTHORIZED, "Invalid token: exp is not a number")
        username = payload.get("username")
        if not isinstance(username, str) or not username.strip():
            raise AuthError(ErrorCode.UNAUTHORIZED, "Invalid token")
        return username

    async def verify_api_key(self, raw_key: str, raw_username: str | None) -> str:
        service = self._app.state.services.open_api
        scopes, error = await service.authenticate_api_key(raw_key)
        if scopes is None:
            raise AuthError(ErrorCode.UNAUTHORIZED, error or "Invalid API key")
        username, error = service.resolve_open_username(raw_username)
        if error or not username:
            raise AuthError(ErrorCode.BAD_USER, error or "Invalid username")
        check_username(username)
        # Exact, case-sensitive, after the host's strip(): how the host matches `admins_id` (its
        # Open API and its pipeline's admin role), so "ASTRBOT" is an ordinary user to both.
        allow_admin = "*" in scopes or "chat:admin" in scopes
        for config in service.core_lifecycle.astrbot_config_mgr.confs.values():
            admins = config.get("admins_id", []) if isinstance(config, dict) else []
            if not allow_admin and any(str(admin) == username for admin in admins):
                raise AuthError(ErrorCode.BAD_USER, "username is reserved for an AstrBot administrator")
        return username

    async def open_conversation(self, username: str, conversation_id: str | None) -> str:
        """The conversation to use: the user's own by default. An id of another spelling than the
        host's is refused (`INVALID_MESSAGE_FORMAT`), one that belongs to somebody else too
        (`FORBIDDEN`); the id checked is the very string the host is given."""
        cid = check_conversation_id(conversation_id) if conversation_id else default_conversation_id(username)
        error = await self._app.state.services.open_api.ensure_chat_session(username, cid)
        if error:
            raise AuthError(ErrorCode.FORBIDDEN, error)
        return cid


def dashboard_username(context: Any) -> str:
    """The dashboard's login name: who owns the rooms that platform feeds go to, unless configured."""
    dashboard = context.get_config().get("dashboard") or {}
    return str(dashboard.get("username") or "astrbot")
