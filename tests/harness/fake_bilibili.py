"""A local Bilibili live server: the HTTP APIs the web player calls and the `/sub` chat socket.

Real HTTP and WebSocket on 127.0.0.1 (aiohttp), speaking the real packet format
(16-byte big-endian header; op 7 auth → op 8 reply; op 2 heartbeat → op 3
popularity; op 5 commands as plain JSON or zlib/brotli bundles). It checks what
the real server needs: a WBI signature on getDanmuInfo (verified here with its
own keys), a buvid3 cookie, the real room id and the token in the auth packet.
Encoding is written out here, independently of the client's, so a bug shared
by both cannot pass unnoticed.

    async with FakeBilibili() as fake:
        client = BilibiliLiveClient(fake.short_id, api_base=fake.api_base, main_api_base=fake.api_base)
        ...
        await fake.wait_connected()
        await fake.danmaku("Mika", 42, "hello")
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import WSCloseCode, WSMsgType, web

try:
    import brotli
except ImportError:
    brotli = None

_HEADER = struct.Struct(">IHHII")
_MIXIN_TAB = (
    46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49, 33, 9, 42, 19, 29, 28, 14, 39, 12, 38,
    41, 13, 37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51, 30, 4, 22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11, 36,
    20, 34, 44, 52,
)  # fmt: skip


def packet(op: int, body: bytes | dict, protover: int = 1, sequence: int = 1) -> bytes:
    """One packet as the server writes it."""
    if isinstance(body, dict):
        body = json.dumps(body, ensure_ascii=False).encode()
    return _HEADER.pack(16 + len(body), 16, protover, op, sequence) + body


def bundle(commands: list[dict], protover: int) -> list[bytes]:
    """WebSocket frames carrying `commands`: one frame each for protover 0, one compressed frame for 2/3."""
    inner = [packet(5, command, protover=0, sequence=0) for command in commands]
    if protover == 0:
        return inner
    if protover == 2:
        return [packet(5, zlib.compress(b"".join(inner)), protover=2, sequence=0)]
    if protover == 3 and brotli is not None:
        return [packet(5, brotli.compress(b"".join(inner)), protover=3, sequence=0)]
    raise ValueError(f"cannot encode protover {protover}")


# ---------------------------------------------------------------- commands, shaped like the real ones


def danmaku_command(name: str, uid: int, text: str, *, legacy_sender: bool = True) -> dict:
    """DANMU_MSG. With legacy_sender=False the name and uid are only in the newer info[0][15].user block."""
    now_ms = int(time.time() * 1000)
    user = {"uid": uid, "base": {"name": name, "face": "", "is_mystery": False, "name_color": 0}}
    extra = json.dumps({"mode": 0, "color": 16777215, "content": text, "dm_type": 0}, ensure_ascii=False)
    meta = [0, 1, 25, 16777215, now_ms, -1, 0, "0bc8acd0", 0, 0, 0, "", 0, "{}", "{}"]
    meta += [{"extra": extra, "mode": 0, "show_player_type": 0, "user": user}, {"activity_source": 0}, 0]
    sender = [uid, name, 0, 0, 0, 10000, 1, ""] if legacy_sender else [0, "", 0, 0, 0, 10000, 1, ""]
    info = [meta, text, sender, [], [0, 0, 9868950, ">50000", 0], ["", ""], 0, 0, None]
    info += [{"ts": now_ms // 1000, "ct": "AFFF4206"}, 0, 0, None, None, 0, 105, [0], None]
    return {"cmd": "DANMU_MSG", "dm_v2": "", "info": info}


def super_chat_command(name: str, uid: int, text: str, price: int) -> dict:
    now = int(time.time())
    user_info = {"uname": name, "face": "", "guard_level": 0, "user_level": 1}
    data = {"id": 9000001, "uid": uid, "price": price, "message": text, "user_info": user_info}
    data |= {"time": 60, "start_time": now, "end_time": now + 60, "rate": 1000, "gift": {"gift_name": "醒目留言"}}
    return {"cmd": "SUPER_CHAT_MESSAGE", "data": data, "roomid": 0}


def gift_command(name: str, uid: int, gift: str, num: int = 1, coin_type: str = "silver", total_coin: int = 0) -> dict:
    data = {"giftName": gift, "giftId": 31036, "num": num, "uname": name, "uid": uid, "action": "投喂"}
    data |= {"coin_type": coin_type, "total_coin": total_coin, "price": total_coin // max(num, 1)}
    return {"cmd": "SEND_GIFT", "data": data | {"timestamp": int(time.time())}}


def guard_command(name: str, uid: int, gift_name: str = "舰长", num: int = 1, price: int = 198000) -> dict:
    level = {"总督": 1, "提督": 2}.get(gift_name, 3)
    now = int(time.time())
    data = {"uid": uid, "username": name, "guard_level": level, "num": num, "price": price}
    return {"cmd": "GUARD_BUY", "data": data | {"gift_id": 10003, "gift_name": gift_name, "start_time": now}}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def entry_command(name: str, uid: int, *, v2: bool = False, msg_type: int = 1) -> dict:
    """INTERACT_WORD, or INTERACT_WORD_V2 whose data.pb is protobuf: 1 uid, 2 uname, 5 msg_type."""
    if not v2:
        data = {"msg_type": msg_type, "uid": uid, "uname": name, "roomid": 0, "timestamp": int(time.time())}
        return {"cmd": "INTERACT_WORD", "data": data}
    uname = name.encode()
    pb = b"\x08" + _varint(uid) + b"\x12" + _varint(len(uname)) + uname
    pb += b"\x22\x02\x03\x01" + b"\x28" + _varint(msg_type) + b"\x30" + _varint(int(time.time()))
    return {"cmd": "INTERACT_WORD_V2", "data": {"dmscore": 10, "pb": base64.b64encode(pb).decode()}}


# ---------------------------------------------------------------- the server


@dataclass
class _Socket:
    ws: web.WebSocketResponse
    protover: int  # what the client asked for in its auth packet


@dataclass
class FakeBilibili:
    room_id: int = 23058
    short_id: int = 3
    token: str = "fake-danmu-token"
    img_key: str = "7cd084941338484aae1ad9425b84077c"
    sub_key: str = "4932caff0ff746eab6f01bf08b70ac45"
    sessdata: str = "fake-sessdata"  # a cookie with this SESSDATA is logged in as login_mid
    login_mid: int = 4242
    buvid3: str = "FAKE-BUVID3-infoc"
    popularity: int = 1234
    reject_auth: bool = False  # answer auth with code -101 and close
    # records
    requests: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)  # path, query, cookies
    auths: list[dict] = field(default_factory=list)
    heartbeats: int = 0
    _sockets: list[_Socket] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sub"

    @property
    def connected(self) -> int:
        """Sockets that are authenticated and open now."""
        return sum(1 for s in self._sockets if not s.ws.closed)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/room/v1/Room/room_init", self._room_init)
        app.router.add_get("/x/web-interface/nav", self._nav)
        app.router.add_get("/x/frontend/finger/spi", self._spi)
        app.router.add_get("/xlive/web-room/v1/index/getDanmuInfo", self._danmu_info)
        app.router.add_get("/sub", self._sub)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drop_connections()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------ what tests call

    async def danmaku(self, name: str, uid: int, text: str, *, protover: int | None = None, **kw: Any) -> None:
        await self.send_commands([danmaku_command(name, uid, text, **kw)], protover=protover)

    async def super_chat(self, name: str, uid: int, text: str, price: int, *, protover: int | None = None) -> None:
        await self.send_commands([super_chat_command(name, uid, text, price)], protover=protover)

    async def gift(
        self,
        name: str,
        uid: int,
        gift: str,
        num: int = 1,
        coin_type: str = "silver",
        total_coin: int = 0,
        *,
        protover: int | None = None,
    ) -> None:
        await self.send_commands([gift_command(name, uid, gift, num, coin_type, total_coin)], protover=protover)

    async def guard(
        self,
        name: str,
        uid: int,
        gift_name: str = "舰长",
        num: int = 1,
        price: int = 198000,
        *,
        protover: int | None = None,
    ) -> None:
        await self.send_commands([guard_command(name, uid, gift_name, num, price)], protover=protover)

    async def entry(self, name: str, uid: int, *, v2: bool = False, protover: int | None = None) -> None:
        await self.send_commands([entry_command(name, uid, v2=v2)], protover=protover)

    async def send_commands(self, commands: list[dict], *, protover: int | None = None) -> None:
        """Push commands to every authenticated socket, encoded as it asked for unless `protover` says."""
        for socket in self._open_sockets():
            for frame in bundle(commands, socket.protover if protover is None else protover):
                await socket.ws.send_bytes(frame)

    async def send_raw(self, frame: bytes) -> None:
        """Push one WebSocket frame as is (for malformed-input tests)."""
        for socket in self._open_sockets():
            await socket.ws.send_bytes(frame)

    async def drop_connections(self) -> None:
        """Close every chat socket, as a server restart would."""
        for socket in list(self._sockets):
            await socket.ws.close(code=WSCloseCode.GOING_AWAY)
        self._sockets.clear()

    async def wait_connected(self, auths: int = 1, timeout: float = 5.0) -> None:
        """Until `auths` auth packets have been accepted in total and a socket is open."""
        await self.wait_until(lambda: self._accepted() >= auths and self.connected > 0, timeout, f"{auths} auth(s)")

    async def wait_heartbeats(self, count: int, timeout: float = 5.0) -> None:
        await self.wait_until(lambda: self.heartbeats >= count, timeout, f"{count} heartbeats")

    def requests_to(self, path: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
        return [r for r in self.requests if r[0] == path]

    # ------------------------------------------------------------ internals

    def _accepted(self) -> int:
        return sum(1 for a in self.auths if a.get("_accepted"))

    def _open_sockets(self) -> list[_Socket]:
        return [s for s in self._sockets if not s.ws.closed]

    @staticmethod
    async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
        """Poll `predicate` until true; TimeoutError naming `what` after `timeout` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"fake bilibili: no {what} within {timeout} s")
            await asyncio.sleep(0.01)

    def _record(self, request: web.Request) -> dict[str, str]:
        cookies = dict(request.cookies)
        self.requests.append((request.path, dict(request.query), cookies))
        return cookies

    @staticmethod
    def _json(code: int, data: dict, message: str = "0") -> web.Response:
        return web.json_response({"code": code, "message": message, "msg": message, "ttl": 1, "data": data})

    async def _room_init(self, request: web.Request) -> web.Response:
        self._record(request)
        if request.query.get("id") not in (str(self.room_id), str(self.short_id)):
            return self._json(60004, {}, "直播间不存在")
        return self._json(0, {"room_id": self.room_id, "short_id": self.short_id, "uid": 1, "live_status": 1})

    async def _nav(self, request: web.Request) -> web.Response:
        cookies = self._record(request)
        wbi = {"img_url": f"https://i0.hdslb.com/bfs/wbi/{self.img_key}.png"}
        wbi["sub_url"] = f"https://i0.hdslb.com/bfs/wbi/{self.sub_key}.png"
        if cookies.get("SESSDATA") == self.sessdata:
            return self._json(0, {"isLogin": True, "mid": self.login_mid, "uname": "streamer", "wbi_img": wbi})
        return self._json(-101, {"isLogin": False, "wbi_img": wbi}, "账号未登录")

    async def _spi(self, request: web.Request) -> web.Response:
        self._record(request)
        return self._json(0, {"b_3": self.buvid3, "b_4": "FAKE-BUVID4"}, "ok")

    def _expected_w_rid(self, query: dict[str, str]) -> str:
        raw = self.img_key + self.sub_key
        mixin = "".join(raw[i] for i in _MIXIN_TAB)[:32]
        params = sorted((k, v) for k, v in query.items() if k != "w_rid")
        encoded = "&".join(f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}" for k, v in params)
        return hashlib.md5((encoded + mixin).encode()).hexdigest()

    async def _danmu_info(self, request: web.Request) -> web.Response:
        cookies = self._record(request)
        query = dict(request.query)
        if not {"id", "type", "wts", "w_rid"} <= query.keys() or query["w_rid"] != self._expected_w_rid(query):
            return self._json(-352, {"v_voucher": "voucher_fake"}, "-352")  # what a bad signature earns
        if query["id"] != str(self.room_id):
            return self._json(1, {}, "房间不存在")  # getDanmuInfo wants the real id, not a short one
        if not cookies.get("buvid3"):
            return self._json(-352, {}, "-352")
        host = {"host": "127.0.0.1", "port": self.port, "wss_port": self.port, "ws_port": self.port}
        data = {"group": "live", "business_id": 0, "refresh_rate": 100, "max_delay": 5000, "token": self.token}
        return self._json(0, data | {"host_list": [host]})

    async def _sub(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            first = await ws.receive(timeout=5)  # the real server drops sockets silent for 5 s
        except TimeoutError:
            await ws.close()
            return ws
        auth = self._parse_auth(first)
        if auth is None:
            await ws.close(code=WSCloseCode.POLICY_VIOLATION)
            return ws
        self.auths.append(auth)
        accepted = not self.reject_auth and auth.get("roomid") == self.room_id and auth.get("key") == self.token
        await ws.send_bytes(packet(8, {"code": 0 if accepted else -101}))
        if not accepted:
            await ws.close(code=WSCloseCode.POLICY_VIOLATION)
            return ws
        auth["_accepted"] = True
        self._sockets.append(_Socket(ws, int(auth.get("protover") or 0)))
        async for message in ws:
            if message.type == WSMsgType.BINARY and self._is_heartbeat(message.data):
                self.heartbeats += 1
                await ws.send_bytes(packet(3, self.popularity.to_bytes(4, "big"), sequence=0))
        return ws

    @staticmethod
    def _parse_auth(message: Any) -> dict | None:
        if message.type != WSMsgType.BINARY or len(message.data) < 16:
            return None
        total, header_len, _protover, op, _seq = _HEADER.unpack_from(message.data)
        if op != 7 or total != len(message.data) or header_len != 16:
            return None
        try:
            auth = json.loads(message.data[16:])
        except ValueError:
            return None
        return auth if isinstance(auth, dict) else None

    @staticmethod
    def _is_heartbeat(data: bytes) -> bool:
        if len(data) < 16:
            return False
        total, header_len, _protover, op, _seq = _HEADER.unpack_from(data)
        return op == 2 and header_len == 16 and total == len(data)
