"""A stand-in for Discord's REST API and gateway: aiohttp on 127.0.0.1, port 0, in its own thread.

Enough of both for discord.py to log in, sync commands and connect: /users/@me and the
application (checking the bot token), command sync, message posts, interaction callbacks and
webhook follow-ups (all recorded), /gateway/bot (the recommended shard count), and a gateway
WebSocket that says HELLO, checks IDENTIFY and then answers READY, or closes with 4014 (an intent
the application lacks), 4004 (bad token) or 4010 (a shard that does not exist).

Several sessions may be open at once, as on Discord: one per shard (IDENTIFY's `shard: [id,
count]`), or several unsharded ones, which all get every event. READY lists the servers of the
session's shard, each followed by its GUILD_CREATE; a server's events go only to the sessions
whose shard owns it ((server_id >> 22) % count), DMs only to shard 0, and an event no session
owns is dropped (`dropped`), as Discord does. `sessions` keeps every session with when it
identified and when it closed, so a test can tell whether two were ever open at once.

A test pushes events (MESSAGE_CREATE, INTERACTION_CREATE) and can invalidate sessions, which
makes discord.py identify again and fire on_ready a second time. Posts to a channel in `stall`
hang unanswered and never reach it, as for a replica killed while its reply was on the way.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

TOKEN = "MTAwMDAwMDAwMDAwMDAwMDAw.GfAkEd.fake-discord-token-LEAKME_0123456789"
APP_ID = "4242"
BOT = {"id": "1000", "username": "trendbot", "discriminator": "0", "global_name": None, "avatar": None, "bot": True}
ALICE = {"id": "2000", "username": "alice", "discriminator": "0", "global_name": "Alice", "avatar": None}
DM_CHANNEL = "600"
TIMESTAMP = "2025-02-08T12:00:00.000000+00:00"
# View Channel, Send Messages, Embed Links and Read Message History for @everyone in the fake's servers
EVERYONE = (1 << 10) | (1 << 11) | (1 << 14) | (1 << 16)


def server_on(shard: int, count: int, n: int = 0) -> int:
    """A server id (a snowflake) whose events go to `shard` of `count`."""
    base = 300_000_000_000 // count + n  # a timestamp part as in a server created in 2024
    return (base * count + shard) << 22 | 0x2A


def channel_of(server_id: int) -> str:
    """The one text channel of a fake server."""
    return str(server_id + 1)


@dataclass
class Call:
    """One REST request the fake received."""

    method: str
    path: str
    data: object
    headers: dict
    at: float = field(default_factory=time.monotonic)


@dataclass
class Session:
    """One gateway session: its shard ((0, 1) unsharded), when it identified and when it closed."""

    ws: web.WebSocketResponse = field(repr=False)
    shard: tuple[int, int]
    session_id: str
    opened: float = field(default_factory=time.monotonic)
    closed: float | None = None

    def owns(self, server_id: int | None) -> bool:
        """Whether Discord sends this session the events of that server (None: a DM)."""
        shard_id, count = self.shard
        return shard_id == (0 if server_id is None else (server_id >> 22) % count)


class FakeDiscord:
    """Discord on loopback. `api_url` is what discord.py's Route.BASE gets, `gateway_url` its gateway."""

    def __init__(self, token: str = TOKEN, gateway: str = "ready", *, servers: tuple[int, ...] = (),
                 recommended_shards: int = 1):
        self.token = token
        self.gateway = gateway  # ready | intent (close 4014) | auth (close 4004)
        self.servers = servers  # the servers the bot is in
        self.recommended_shards = recommended_shards  # what /gateway/bot answers
        self.calls: list[Call] = []
        self.identifies: list[dict] = []
        self.sessions: list[Session] = []
        self.dropped: list[tuple[str, dict]] = []  # events no open session owned
        # channel id -> (status, JSON body) answers to give message posts there first, in order
        self.post_errors: dict[str, list[tuple[int, dict]]] = {}
        # channels whose message posts hang unanswered while listed (a replica killed mid-reply);
        # they never reach the channel, and are kept in `stalled`, not in `calls`
        self.stall: set[str] = set()
        self.stalled: list[Call] = []
        self._stopping = False
        self._ids = itertools.count(800000)
        self._seq = itertools.count(1)
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-discord", daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> FakeDiscord:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        self._stopping = True
        for session in self.open_sessions():
            await session.ws.close()
        await self._runner.cleanup()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    def launcher(self) -> str:
        """Python code that points discord.py at this fake, then runs `trendbot` with sys.argv."""
        return (
            "import sys, yarl, discord, discord.http, discord.gateway\n"
            f"discord.http.Route.BASE = {self.api_url!r}\n"
            f"discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL({self.gateway_url!r})\n"
            "_init = discord.Client.__init__\n"
            "def _init_fast(self, *a, **kw):\n"
            "    kw.setdefault('guild_ready_timeout', 0.05)  # READY lists no guilds: don't wait 2 s for them\n"
            "    _init(self, *a, **kw)\n"
            "discord.Client.__init__ = _init_fast\n"
            "import trendbot.cli\n"
            "sys.exit(trendbot.cli.main(sys.argv[1:]))\n"
        )

    # -- what a test does ---------------------------------------------------------------------

    def open_sessions(self) -> list[Session]:
        """The sessions open now."""
        with self._cond:
            return [x for x in self.sessions if x.closed is None]

    def send(self, event: str, data: dict) -> int:
        """Dispatch a gateway event to every open session whose shard owns it; how many got it."""
        server = int(data["guild_id"]) if data.get("guild_id") else None
        targets = [x for x in self.open_sessions() if x.owns(server)]
        for session in targets:
            payload = {"op": 0, "t": event, "s": next(self._seq), "d": data}
            asyncio.run_coroutine_threadsafe(session.ws.send_str(json.dumps(payload)), self._loop).result(5)
        if not targets:
            with self._cond:
                self.dropped.append((event, data))
        return len(targets)

    def invalidate(self) -> None:
        """Invalidate the open sessions (op 9): discord.py identifies again and gets a new READY."""
        for session in self.open_sessions():
            asyncio.run_coroutine_threadsafe(session.ws.send_str(json.dumps({"op": 9, "d": False})),
                                             self._loop).result(5)

    def overlaps(self) -> list[tuple[Session, Session]]:
        """Pairs of sessions of one shard that were open at the same time (Discord would send both every event)."""
        with self._cond:
            done = list(self.sessions)
        now = time.monotonic()
        return [(a, b) for i, a in enumerate(done) for b in done[i + 1:]
                if a.shard == b.shard and a.opened < (b.closed or now) and b.opened < (a.closed or now)]

    def wait_for(self, predicate, timeout: float = 10.0):
        """Block until predicate(self) is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not (value := predicate(self)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out; calls: {[(c.method, c.path) for c in self.calls]}")
                self._cond.wait(left)
            return value

    def requests(self, method: str, path_part: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and path_part in c.path]

    # -- REST -----------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body = await request.read()
        data = json.loads(body) if body and request.content_type == "application/json" else None
        call = Call(request.method, path, data, dict(request.headers))
        channel_id = path.split("/")[2] if path.startswith("/channels/") and path.endswith("/messages") else None
        if request.method == "POST" and channel_id in self.stall:
            with self._cond:
                self.stalled.append(call)
                self._cond.notify_all()
            while channel_id in self.stall and not self._stopping:
                await asyncio.sleep(0.05)
            return _json({"message": "503: Service Unavailable", "code": 0}, status=503)
        response = self._answer(call)
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()
        return response

    def _answer(self, call: Call) -> web.Response:
        method, path, data = call.method, call.path, call.data
        if path.startswith("/interactions/"):  # authorised by the interaction token in the path
            flags = (data.get("data") or {}).get("flags", 0) or 0
            return _json({
                "interaction": {"id": path.split("/")[2], "type": 2, "response_message_id": str(next(self._ids)),
                                "response_message_loading": data.get("type") == 5,
                                "response_message_ephemeral": bool(flags & 64)},
                "resource": {"type": data.get("type")},
            })
        if path.startswith("/webhooks/"):
            if method == "DELETE":
                return web.Response(status=204)
            return _json(self._message(data or {}, path.split("/")[3]))
        if call.headers.get("Authorization") != f"Bot {self.token}":
            return _json({"message": "401: Unauthorized", "code": 0}, status=401)
        if method == "GET" and path == "/users/@me":
            return _json(BOT)
        if method == "GET" and path == "/gateway/bot":
            return _json({"url": self.gateway_url, "shards": self.recommended_shards,
                          "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0,
                                                  "max_concurrency": 1}})
        if method == "GET" and path == "/oauth2/applications/@me":
            return _json({"id": APP_ID, "name": "trendbot", "description": "", "icon": None,
                                      "bot_public": True, "bot_require_code_grant": False, "verify_key": "0" * 64,
                                      "owner": ALICE, "flags": 0})
        if method == "PUT" and path.endswith("/commands"):
            return _json([{**c, "id": str(next(self._ids)), "application_id": APP_ID, "version": "1"}
                                      for c in data])
        if method == "POST" and path.startswith("/channels/") and path.endswith("/messages"):
            channel_id = path.split("/")[2]
            if self.post_errors.get(channel_id):
                status, body = self.post_errors[channel_id].pop(0)
                # Discord's own 429s come through its proxy; discord.py treats one without Via as
                # Cloudflare's and does not retry it.
                return _json(body, status=status, headers={"Via": "1.1 google"} if status == 429 else None)
            return _json(self._message(data, channel_id))
        return _json({"message": "404: Not Found", "code": 0}, status=404)

    def _message(self, data: dict, channel_id: str) -> dict:
        return {"id": str(next(self._ids)), "channel_id": channel_id, "author": BOT, "content": data.get("content") or "",
                "timestamp": TIMESTAMP, "edited_timestamp": None, "tts": False, "mention_everyone": False,
                "mentions": [], "mention_roles": [], "attachments": [], "embeds": data.get("embeds") or [],
                "components": data.get("components") or [], "pinned": False, "type": 0, "flags": 0}

    # -- gateway ----------------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        session: Session | None = None
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 45000}}))
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                payload = json.loads(msg.data)
                if payload.get("op") == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif payload.get("op") == 2:
                    session = await self._identify(ws, payload["d"]) or session
        finally:
            if session is not None:
                with self._cond:
                    session.closed = time.monotonic()
                    self._cond.notify_all()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, identify: dict) -> Session | None:
        """Answer IDENTIFY: READY and the shard's servers, or a close code saying why not."""
        with self._cond:
            self.identifies.append(identify)
            self._cond.notify_all()
        shard = identify.get("shard")
        if identify.get("token") != self.token or self.gateway == "auth":
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        if self.gateway == "intent":
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        if shard is not None and not (isinstance(shard, list) and len(shard) == 2 and 0 <= shard[0] < shard[1]):
            await ws.close(code=4010, message=b"Invalid shard.")
            return None
        session = Session(ws, tuple(shard) if shard else (0, 1), f"session-{len(self.identifies)}")
        mine = [g for g in self.servers if session.owns(g)]
        ready = {"v": 10, "user": BOT, "guilds": [{"id": str(g), "unavailable": True} for g in mine],
                 "session_id": session.session_id, "resume_gateway_url": self.gateway_url,
                 "application": {"id": APP_ID, "flags": 0}}
        if shard is not None:
            ready["shard"] = list(shard)
        await ws.send_str(json.dumps({"op": 0, "t": "READY", "s": next(self._seq), "d": ready}))
        for g in mine:
            await ws.send_str(json.dumps({"op": 0, "t": "GUILD_CREATE", "s": next(self._seq), "d": server(g)}))
        with self._cond:
            self.sessions.append(session)
            self._cond.notify_all()
        return session


def server(server_id: int) -> dict:
    """A GUILD_CREATE payload: one text channel, the bot a member with @everyone's permissions."""
    sid = str(server_id)
    return {"id": sid, "name": f"server {sid}", "icon": None, "owner_id": ALICE["id"], "unavailable": False,
            "member_count": 2, "large": False, "features": [], "emojis": [], "stickers": [],
            "roles": [{"id": sid, "name": "@everyone", "permissions": str(EVERYONE), "position": 0, "color": 0,
                       "hoist": False, "managed": False, "mentionable": False, "flags": 0}],
            "channels": [{"id": channel_of(server_id), "type": 0, "guild_id": sid, "name": "general",
                          "position": 0, "permission_overwrites": [], "nsfw": False, "parent_id": None}],
            "members": [{"user": BOT, "roles": [], "joined_at": TIMESTAMP, "deaf": False, "mute": False, "flags": 0}],
            "threads": [], "voice_states": [], "presences": [], "stage_instances": [], "guild_scheduled_events": []}


def mention(content: str, server_id: int, *, author: dict = ALICE, message_id: str = "5101") -> dict:
    """A MESSAGE_CREATE payload for `@trendbot content` in a server's channel."""
    return {**dm_message(f"<@{BOT['id']}> {content}", author=author, message_id=message_id),
            "channel_id": channel_of(server_id), "guild_id": str(server_id), "mentions": [BOT],
            "member": {"roles": [], "joined_at": TIMESTAMP, "deaf": False, "mute": False, "flags": 0}}


def dm_message(content: str, *, author: dict = ALICE, message_id: str = "5001") -> dict:
    """A MESSAGE_CREATE payload for a DM to the bot."""
    return {"id": message_id, "channel_id": DM_CHANNEL, "author": author, "content": content, "timestamp": TIMESTAMP,
            "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [], "mention_roles": [],
            "attachments": [], "embeds": [], "pinned": False, "type": 0, "flags": 0}


def interaction(kind: int, data: dict, *, interaction_id: str = "7001", message: dict | None = None) -> dict:
    """An INTERACTION_CREATE payload in the bot's DM: 2 a command, 3 a button, 4 autocomplete."""
    payload = {"id": interaction_id, "application_id": APP_ID, "type": kind, "token": f"itoken-{interaction_id}",
               "version": 1, "data": data, "channel_id": DM_CHANNEL, "channel": {"id": DM_CHANNEL, "type": 1},
               "user": ALICE, "locale": "en-US", "app_permissions": "0", "entitlements": [],
               "attachment_size_limit": 8388608, "authorizing_integration_owners": {"0": "1"}, "context": 1}
    if message is not None:
        payload["message"] = message
    return payload


def _json(data: object, status: int = 200, headers: dict | None = None) -> web.Response:
    # Exactly "application/json": discord.py parses a body only when the header says just that.
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json", **(headers or {})})
