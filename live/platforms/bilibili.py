"""Bilibili live chat, as the web player receives it, turned into `ViewerEvent`s.

The steps (bilibili-API-collect, docs/live/message_stream.md and docs/misc/sign/wbi.md):

1. `room_init?id=` turns the room number in the URL (maybe a short id) into the real room id.
2. `x/web-interface/nav` gives the WBI signing keys (and the uid when a login cookie is given);
   `x/frontend/finger/spi` gives a `buvid3` device id when the cookie has none.
3. `getDanmuInfo?id=&type=0`, WBI-signed (required since May 2025), gives a token and server hosts.
4. WebSocket `wss://<host>:<wss_port>/sub`: an auth packet (op 7) answered by op 8 `{"code":0}`;
   a heartbeat (op 2) every 30 s answered by the popularity (op 3); commands arrive as op 5, plain
   JSON (protover 0) or compressed bundles of packets (2: zlib, 3: brotli).

We ask for protover 2 so no brotli dependency is needed; protover 3 bundles are opened only when
the `brotli` package happens to be installed.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from enum import IntEnum
from typing import Any, NamedTuple

import aiohttp

from ..log import logger
from .base import Emit, PlatformStatus, ViewerEvent, run_with_backoff

try:
    import brotli  # optional: only for protover 3 bundles
except ImportError:
    brotli = None

LIVE_API = "https://api.live.bilibili.com"
MAIN_API = "https://api.bilibili.com"
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)
FALLBACK_HOST = {"host": "broadcastlv.chat.bilibili.com", "port": 2243, "wss_port": 443, "ws_port": 2244}
HTTP_TIMEOUT_S = 10.0
AUTH_TIMEOUT_S = 10.0  # the server itself drops a socket that has not authenticated within 5 s
WBI_KEYS_MAX_AGE_S = 3600.0  # the keys change daily; refetch hourly and after any rejection
MAX_BUNDLE_BYTES = 4 << 20  # a compressed bundle may not inflate past this (zip bombs)

# ---------------------------------------------------------------- packets


class Op(IntEnum):
    HEARTBEAT = 2
    HEARTBEAT_REPLY = 3  # body: uint32 popularity
    COMMAND = 5
    AUTH = 7
    AUTH_REPLY = 8


class Protover(IntEnum):
    JSON = 0
    HEARTBEAT_AUTH = 1
    ZLIB = 2
    BROTLI = 3


HEADER = struct.Struct(">IHHII")  # total length, header length (16), protover, op, sequence
HEARTBEAT_BODY = b"[object Object]"  # what the web player sends; any body is accepted


class PacketError(ValueError):
    """A frame that does not follow the packet format."""


class UnsupportedCompression(PacketError):
    """A brotli bundle while the `brotli` package is not installed."""


class Packet(NamedTuple):
    op: int
    body: bytes


def encode_packet(op: int, body: bytes | dict = b"", protover: int = Protover.HEARTBEAT_AUTH) -> bytes:
    """One packet: the 16-byte big-endian header, then the body (a dict is sent as JSON)."""
    if isinstance(body, dict):
        body = json.dumps(body, separators=(",", ":")).encode()
    return HEADER.pack(HEADER.size + len(body), HEADER.size, protover, op, 1) + body


def decode_frame(frame: bytes, *, nested: bool = False) -> Iterator[Packet]:
    """The packets in one WebSocket frame, with compressed bundles opened into their packets."""
    offset = 0
    while offset < len(frame):
        if len(frame) - offset < HEADER.size:
            raise PacketError(f"{len(frame) - offset} trailing bytes, shorter than a header")
        total, header_len, protover, op, _sequence = HEADER.unpack_from(frame, offset)
        if header_len < HEADER.size or total < header_len or offset + total > len(frame):
            raise PacketError(f"bad lengths: total={total} header={header_len} left={len(frame) - offset}")
        body = frame[offset + header_len : offset + total]
        offset += total
        if op == Op.COMMAND and protover in (Protover.ZLIB, Protover.BROTLI):
            if nested:
                raise PacketError("a compressed bundle inside a compressed bundle")
            yield from decode_frame(_inflate(protover, body), nested=True)
        else:
            yield Packet(op, body)


def _inflate(protover: int, body: bytes) -> bytes:
    try:
        if protover == Protover.ZLIB:
            inflater = zlib.decompressobj()
            data = inflater.decompress(body, MAX_BUNDLE_BYTES)
            if inflater.unconsumed_tail:
                raise PacketError(f"bundle inflates past {MAX_BUNDLE_BYTES} bytes")
            return data
        if brotli is None:
            raise UnsupportedCompression("a brotli bundle, but the brotli package is not installed")
        data = brotli.decompress(body)
        if len(data) > MAX_BUNDLE_BYTES:
            raise PacketError(f"bundle inflates past {MAX_BUNDLE_BYTES} bytes")
        return data
    except (zlib.error, getattr(brotli, "error", zlib.error)) as exc:
        raise PacketError(f"cannot inflate a protover {protover} bundle: {exc}") from exc


# ---------------------------------------------------------------- WBI signing

MIXIN_KEY_ENC_TAB = (
    46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49, 33, 9, 42, 19, 29, 28, 14, 39, 12, 38,
    41, 13, 37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51, 30, 4, 22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11, 36,
    20, 34, 44, 52,
)  # fmt: skip


def wbi_key_from_url(url: str) -> str:
    """`https://i0.hdslb.com/bfs/wbi/7cd08494….png` → `7cd08494…` (the URLs are disguised keys)."""
    return url.rsplit("/", 1)[-1].split(".", 1)[0]


def wbi_mixin_key(img_key: str, sub_key: str) -> str:
    raw = img_key + sub_key
    if len(raw) < 64:
        raise ValueError(f"WBI keys too short ({len(raw)} characters)")
    return "".join(raw[i] for i in MIXIN_KEY_ENC_TAB)[:32]


def wbi_query(params: dict[str, Any], *, img_key: str, sub_key: str, wts: int | None = None) -> str:
    """Sort the params with `wts` added, percent-encode them like encodeURIComponent, and append `w_rid`."""
    mixin_key = wbi_mixin_key(img_key, sub_key)
    signed = {key: "".join(c for c in str(value) if c not in "!'()*") for key, value in params.items()}
    signed["wts"] = str(int(time.time()) if wts is None else wts)
    query = urllib.parse.urlencode(sorted(signed.items()), quote_via=urllib.parse.quote)
    return f"{query}&w_rid={hashlib.md5((query + mixin_key).encode()).hexdigest()}"


# ---------------------------------------------------------------- commands → events


def _dig(value: Any, *path: str | int) -> Any:
    """value[p0][p1]… through JSON objects and arrays only; None when a step is missing."""
    for key in path:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and isinstance(key, int) and 0 <= key < len(value):
            value = value[key]
        else:
            return None
    return value


def _varint(data: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while i < len(data) and shift < 64:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7
    raise PacketError("truncated or overlong varint")


def protobuf_fields(data: bytes) -> dict[int, int | bytes]:
    """The top-level fields of a protobuf message (first value of each): all INTERACT_WORD_V2 needs."""
    fields: dict[int, int | bytes] = {}
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        wire_type = key & 7
        if wire_type == 0:
            value, i = _varint(data, i)
        elif wire_type in (1, 2, 5):
            size, i = (8, i) if wire_type == 1 else (4, i) if wire_type == 5 else _varint(data, i)
            if i + size > len(data):
                raise PacketError("truncated protobuf field")
            value, i = data[i : i + size], i + size
        else:
            raise PacketError(f"unsupported protobuf wire type {wire_type}")
        fields.setdefault(key >> 3, value)
    return fields


def _event(kind: str, name: Any, uid: Any, **fields: Any) -> ViewerEvent:
    # uid 0 is what the server sends for a viewer it hides from guests: no id rather than "0"
    return ViewerEvent(kind, str(name or ""), str(uid) if uid else "", platform="bilibili", **fields)  # type: ignore[arg-type]


def _danmaku(command: dict) -> ViewerEvent | None:
    text = _dig(command, "info", 1)
    if not isinstance(text, str):
        return None
    user = _dig(command, "info", 0, 15, "user")  # the newer, fuller sender block
    name = _dig(command, "info", 2, 1) or _dig(user, "base", "name")
    return _event("danmaku", name, _dig(command, "info", 2, 0) or _dig(user, "uid"), text=text)


def _super_chat(command: dict) -> ViewerEvent:
    data = command["data"]
    name = _dig(data, "user_info", "uname")
    return _event("superchat", name, data.get("uid"), text=str(data["message"]), value=float(data["price"]))


def _gift(command: dict) -> ViewerEvent:
    data = command["data"]
    paid = data.get("coin_type") == "gold"  # gold coins are bought (1000 = 1 CNY); silver ones are free
    value = int(data.get("total_coin") or 0) / 1000 if paid else 0.0
    count = int(data.get("num") or 1)
    return _event("gift", data["uname"], data.get("uid"), gift_name=str(data["giftName"]), count=count, value=value)


def _guard(command: dict) -> ViewerEvent:
    data = command["data"]
    count = int(data.get("num") or 1)
    value = int(data.get("price") or 0) * count / 1000  # price is per unit, in gold coins
    gift_name = str(data.get("gift_name") or "")
    return _event("guard", data["username"], data.get("uid"), gift_name=gift_name, count=count, value=value)


def _entry(command: dict) -> ViewerEvent | None:
    data = command["data"]
    if data.get("msg_type") != 1:  # 2 follow, 3 share, ...
        return None
    return _event("entry", data["uname"], data.get("uid"))


def _entry_v2(command: dict) -> ViewerEvent | None:
    # data.pb is a base64 protobuf: 1 uid, 2 uname, 5 msg_type (same meaning as INTERACT_WORD)
    fields = protobuf_fields(base64.b64decode(command["data"]["pb"]))
    if fields.get(5) != 1:
        return None
    name = fields.get(2, b"")
    return _event("entry", name.decode() if isinstance(name, bytes) else "", fields.get(1))


_HANDLERS: dict[str, Callable[[dict], ViewerEvent | None]] = {
    "DANMU_MSG": _danmaku,
    "SUPER_CHAT_MESSAGE": _super_chat,
    "SEND_GIFT": _gift,
    "GUARD_BUY": _guard,
    "INTERACT_WORD": _entry,
    "INTERACT_WORD_V2": _entry_v2,
}


def command_to_event(command: dict) -> ViewerEvent | None:
    """The viewer event in one op-5 command, or None (another command, or one too broken to read)."""
    cmd = str(command.get("cmd", "")).split(":", 1)[0]  # old servers sent "DANMU_MSG:4:0:2:2:2:0"
    handler = _HANDLERS.get(cmd)
    if handler is None:
        return None
    try:
        return handler(command)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        logger.debug("bilibili: unreadable %s command: %r", cmd, exc)
        return None


# ---------------------------------------------------------------- the client


class BilibiliError(Exception):
    """An API or server answer that stops this connection attempt (retried with backoff)."""


def _default_session() -> aiohttp.ClientSession:
    # Cookies are sent by hand from the configured string; a jar would mix in whatever servers set.
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), headers={"User-Agent": USER_AGENT})


def _parse_cookie(cookie: str) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in cookie.split(";"))
    return {name.strip(): value.strip() for name, _, value in pairs if name.strip()}


class BilibiliLiveClient:
    """One Bilibili live room's chat. `await run(emit)` until cancelled; read `status` any time.

    `room_id` is the number in the room's URL (short ids work). `cookie` is an optional browser
    cookie string (`SESSDATA=…; buvid3=…`): without a login the server hides viewer names
    ("用户***") and ids. It is sent only to `api_base`/`main_api_base` and never logged.
    With an `http://` api_base (a local test server) the socket is `ws://<host>:<ws_port>/sub`.
    """

    name = "bilibili"

    def __init__(
        self,
        room_id: int,
        *,
        cookie: str = "",
        api_base: str = LIVE_API,
        main_api_base: str = MAIN_API,
        ws_url: str | None = None,
        http_session_factory: Callable[[], aiohttp.ClientSession] = _default_session,
        protover: int = Protover.ZLIB,
        heartbeat_interval: float = 30.0,
        backoff_initial: float = 1.0,
        backoff_maximum: float = 60.0,
    ) -> None:
        self.room_id = room_id
        self.real_room_id: int | None = None
        self.popularity = 0
        self.status = PlatformStatus()
        self._cookies = _parse_cookie(cookie)
        self._api_base = api_base.rstrip("/")
        self._main_api_base = main_api_base.rstrip("/")
        self._ws_url = ws_url
        self._session_factory = http_session_factory
        if protover == Protover.BROTLI and brotli is None:
            logger.info("bilibili: the brotli package is not installed; asking for zlib (protover 2) instead")
            protover = Protover.ZLIB
        self._protover = int(protover)
        self._heartbeat_interval = heartbeat_interval
        self._backoff = (backoff_initial, backoff_maximum)
        self._uid = 0
        self._buvid = self._cookies.get("buvid3", "")
        self._wbi_keys: tuple[str, str] | None = None
        self._wbi_keys_at = 0.0
        self._attempts = 0
        self._logged_once: set[str] = set()

    def __repr__(self) -> str:
        return f"BilibiliLiveClient(room={self.room_id}, real={self.real_room_id}, connected={self.status.connected})"

    async def run(self, emit: Emit) -> None:
        """Connect, receive and reconnect until cancelled. Raises nothing but CancelledError."""
        session = self._session_factory()
        try:
            await run_with_backoff(
                lambda: self._connect_once(session, emit),
                self.status,
                initial=self._backoff[0],
                maximum=self._backoff[1],
                log_name=f"bilibili room {self.room_id}",
            )
        finally:
            await session.close()

    # ------------------------------------------------------------ one connection

    async def _connect_once(self, session: aiohttp.ClientSession, emit: Emit) -> None:
        url, auth = await self._prepare(session)
        headers = {"User-Agent": USER_AGENT, "Origin": "https://live.bilibili.com"}
        async with asyncio.timeout(HTTP_TIMEOUT_S):  # the session's own default is minutes
            ws = await session.ws_connect(url, headers=headers)
        async with ws:
            await ws.send_bytes(encode_packet(Op.AUTH, auth))
            async with asyncio.timeout(AUTH_TIMEOUT_S):
                await self._await_auth_reply(ws)
            self.status.mark_connected()
            logger.info("bilibili: connected to room %s (uid %s)", self.real_room_id, self._uid)
            heartbeat = asyncio.create_task(self._heartbeat(ws), name=f"bilibili-heartbeat-{self.room_id}")
            try:
                await self._receive(ws, emit)
            finally:
                heartbeat.cancel()
                await asyncio.wait([heartbeat])

    async def _await_auth_reply(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                raise BilibiliError(f"closed before the auth reply (code {ws.close_code})")
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            for packet in decode_frame(message.data):
                if packet.op == Op.AUTH_REPLY:
                    code = _dig(json.loads(packet.body or b"{}"), "code")
                    if code != 0:
                        raise BilibiliError(f"auth rejected (code {code})")
                    return

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        packet = encode_packet(Op.HEARTBEAT, HEARTBEAT_BODY)
        try:
            while True:
                await ws.send_bytes(packet)
                await asyncio.sleep(self._heartbeat_interval)
        except Exception as exc:  # noqa: BLE001 - a dead socket: close it so the receive loop ends too
            logger.debug("bilibili: heartbeat failed: %r", exc)
            await ws.close()

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse, emit: Emit) -> None:
        # The server answers every heartbeat, so this much silence means the link is dead.
        silence = self._heartbeat_interval * 2 + 10
        while True:
            try:
                message = await ws.receive(timeout=silence)
            except TimeoutError:
                raise BilibiliError(f"nothing received for {silence:.0f} s") from None
            if message.type == aiohttp.WSMsgType.BINARY:
                self._handle_frame(message.data, emit)
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                raise BilibiliError(f"closed by the server (code {ws.close_code})")
            elif message.type == aiohttp.WSMsgType.ERROR:
                raise BilibiliError(f"socket error: {ws.exception()!r}")

    def _handle_frame(self, frame: bytes, emit: Emit) -> None:
        try:
            for packet in decode_frame(frame):
                self._handle_packet(packet, emit)
        except UnsupportedCompression as exc:
            if self._first("brotli"):
                logger.warning("bilibili: skipping frames: %s", exc)
        except PacketError as exc:
            logger.debug("bilibili: skipped the rest of a malformed frame: %s", exc)

    def _handle_packet(self, packet: Packet, emit: Emit) -> None:
        if packet.op == Op.HEARTBEAT_REPLY:
            if len(packet.body) >= 4:
                self.popularity = int.from_bytes(packet.body[:4], "big")
        elif packet.op == Op.COMMAND:
            try:
                command = json.loads(packet.body)
            except ValueError:  # also covers UnicodeDecodeError
                logger.debug("bilibili: skipped a command that is not JSON (%d bytes)", len(packet.body))
                return
            event = command_to_event(command) if isinstance(command, dict) else None
            if event is not None:
                self.status.events += 1
                try:
                    emit(event)
                except Exception as exc:  # noqa: BLE001 - the consumer's bug must not cut the chat feed
                    logger.warning("bilibili: the viewer-event consumer failed: %r", exc)
        elif packet.op != Op.AUTH_REPLY:
            logger.debug("bilibili: ignored a packet with op %d", packet.op)

    # ------------------------------------------------------------ HTTP preparation

    async def _prepare(self, session: aiohttp.ClientSession) -> tuple[str, dict[str, Any]]:
        """Resolve the room, fetch keys and a token; the socket URL and auth packet for this attempt."""
        if self.real_room_id is None:
            data = await self._get_json(session, f"{self._api_base}/room/v1/Room/room_init?id={self.room_id}")
            if not isinstance(data.get("room_id"), int):
                raise BilibiliError("room_init: no room_id in the answer")
            self.real_room_id = data["room_id"]
        if self._wbi_keys is None or time.monotonic() - self._wbi_keys_at > WBI_KEYS_MAX_AGE_S:
            await self._load_nav(session)
        if not self._buvid:
            await self._load_buvid(session)
        token, hosts = await self._danmu_info(session)
        self._attempts += 1
        auth: dict[str, Any] = {
            "uid": self._uid,
            "roomid": self.real_room_id,
            "protover": self._protover,
            "platform": "web",
            "type": 2,
            "key": token,
            "buvid": self._buvid,
        }
        if self._ws_url:
            return self._ws_url, auth
        host = hosts[self._attempts % len(hosts)]  # rotate through the servers on reconnects
        if self._api_base.startswith("http://"):
            return f"ws://{host['host']}:{host['ws_port']}/sub", auth
        return f"wss://{host['host']}:{host['wss_port']}/sub", auth

    async def _load_nav(self, session: aiohttp.ClientSession) -> None:
        # nav answers code -101 ("not logged in") for guests but still carries the WBI keys
        data = await self._get_json(session, f"{self._main_api_base}/x/web-interface/nav", allow_codes=(-101,))
        img_url, sub_url = _dig(data, "wbi_img", "img_url"), _dig(data, "wbi_img", "sub_url")
        if not isinstance(img_url, str) or not isinstance(sub_url, str):
            raise BilibiliError("nav: no WBI keys in the answer")
        self._wbi_keys = (wbi_key_from_url(img_url), wbi_key_from_url(sub_url))
        self._wbi_keys_at = time.monotonic()
        self._uid = int(data.get("mid") or 0) if data.get("isLogin") else 0
        if "SESSDATA" in self._cookies and not self._uid and self._first("stale-cookie"):
            logger.warning("bilibili: the cookie is not logged in (expired?); viewer names will be masked")
        elif not self._cookies.get("SESSDATA") and self._first("guest"):
            logger.info("bilibili: no login cookie; Bilibili masks viewer names and ids for guests")

    async def _load_buvid(self, session: aiohttp.ClientSession) -> None:
        try:
            data = await self._get_json(session, f"{self._main_api_base}/x/frontend/finger/spi")
            self._buvid = str(data.get("b_3") or "")
        except (BilibiliError, aiohttp.ClientError, TimeoutError) as exc:  # best effort: auth works without
            logger.debug("bilibili: no buvid3: %r", exc)

    async def _danmu_info(self, session: aiohttp.ClientSession) -> tuple[str, list[dict[str, Any]]]:
        assert self._wbi_keys is not None  # loaded by _prepare
        img_key, sub_key = self._wbi_keys
        query = wbi_query(
            {"id": self.real_room_id, "type": 0, "web_location": "444.8"}, img_key=img_key, sub_key=sub_key
        )
        try:
            data = await self._get_json(session, f"{self._api_base}/xlive/web-room/v1/index/getDanmuInfo?{query}")
        except BilibiliError:
            self._wbi_keys = None  # a rejected signature usually means the daily keys rotated
            raise
        hosts = [h for h in data.get("host_list") or () if isinstance(h, dict) and h.get("host")]
        return str(data.get("token") or ""), hosts or [FALLBACK_HOST]

    async def _get_json(self, session: aiohttp.ClientSession, url: str, *, allow_codes: tuple[int, ...] = ()) -> dict:
        """GET a Bilibili API; its `data` object when `code` is 0 (or allowed), else BilibiliError."""
        cookies = dict(self._cookies)
        if self._buvid:
            cookies.setdefault("buvid3", self._buvid)
        headers = {"Referer": "https://live.bilibili.com/"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
        path = urllib.parse.urlsplit(url).path
        async with session.get(url, headers=headers, timeout=timeout) as response:
            if response.status != 200:
                raise BilibiliError(f"{path}: HTTP {response.status}")
            try:
                body = await response.json(content_type=None)
            except ValueError:
                raise BilibiliError(f"{path}: the answer is not JSON") from None
        code = _dig(body, "code")
        if code != 0 and code not in allow_codes:
            raise BilibiliError(f"{path}: code {code} {_dig(body, 'message') or _dig(body, 'msg') or ''}".rstrip())
        data = _dig(body, "data")
        return data if isinstance(data, dict) else {}

    def _first(self, key: str) -> bool:
        """True the first time `key` is asked about: for messages logged once per client."""
        first = key not in self._logged_once
        self._logged_once.add(key)
        return first
