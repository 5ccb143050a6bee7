"""Who is connecting, checked exactly the way the host checks it.

Dashboard JWTs are verified with the host's own secret; API keys go through
the host's Open API service (hash lookup, revocation, scopes); conversation
ownership uses the host's WebChat session table.
"""

from __future__ import annotations

import uuid
from typing import Any

import jwt

from ..errors import AuthError, ErrorCode

LIVE_NAMESPACE = uuid.UUID("5b0e9c8e-5d7e-4f43-9c3c-6c6976654d64")


def default_conversation_id(username: str) -> str:
    """A stable conversation per user, so memory survives reconnects."""
    return str(uuid.uuid5(LIVE_NAMESPACE, f"live:{username}"))


class HostAccess:
    def __init__(self, app: Any) -> None:
        self._app = app

    def verify_dashboard_token(self, token: str) -> str:
        try:
            payload = jwt.decode(token, self._app.state.jwt_secret, algorithms=["HS256"])
        except jwt.ExpiredSignatureError:
            raise AuthError(ErrorCode.UNAUTHORIZED, "Token expired") from None
        except jwt.InvalidTokenError:
            raise AuthError(ErrorCode.UNAUTHORIZED, "Invalid token") from None
        username = payload.get("username") if isinstance(payload, dict) else None
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
        allow_admin = "*" in scopes or "chat:admin" in scopes
        for config in service.core_lifecycle.astrbot_config_mgr.confs.values():
            admins = config.get("admins_id", []) if isinstance(config, dict) else []
            if not allow_admin and any(str(admin) == username for admin in admins):
                raise AuthError(ErrorCode.BAD_USER, "username is reserved for an AstrBot administrator")
        return username

    async def open_conversation(self, username: str, conversation_id: str | None) -> str:
        """The conversation to use; refuses one that belongs to somebody else."""
        cid = (conversation_id or "").strip() or default_conversation_id(username)
        if len(cid) > 128:
            raise AuthError(ErrorCode.FORBIDDEN, "conversation_id is too long")
        error = await self._app.state.services.open_api.ensure_chat_session(username, cid)
        if error:
            raise AuthError(ErrorCode.FORBIDDEN, error)
        return cid


def dashboard_username(context: Any) -> str:
    """The dashboard's login name: who owns the rooms that platform feeds go to, unless configured."""
    dashboard = context.get_config().get("dashboard") or {}
    return str(dashboard.get("username") or "astrbot")
