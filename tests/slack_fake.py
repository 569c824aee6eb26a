"""A stand-in for Slack's Web API and response_url: a real HTTP server on 127.0.0.1, port 0, in a thread.

It answers auth.test, chat.postMessage, chat.postEphemeral, users.info, users.conversations,
conversations.info, conversations.join, views.open, views.publish and apps.connections.open
(checking the bearer token),
accepts posts to /response/<name> as Slack's response_url does, records every call (with the
token it came with), and can answer one call with 429 + Retry-After to exercise the retry
handlers. For an app installed in several workspaces it plays Slack's side of the OAuth flow:
`grant(team)` is a person approving the install (a one-time code), oauth.v2.access exchanges the
code for that workspace's own bot token (checking the client id and secret), and `revoke(team)`
is Slack revoking a workspace's tokens when it uninstalls the app. Also here: Slack's request
signing, and a helper that runs the app's HTTP server in its own event loop thread.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

FIXTURES = Path(__file__).parent / "fixtures" / "slack"
ROOT_MANIFEST = Path(__file__).resolve().parents[1] / "slack" / "manifest.yaml"
BOT_TOKEN = "xoxb-1111-2222-FAKEbotTOKENvalue"
APP_TOKEN = "xapp-1-A0TRENDBOT-3333-FAKEappTOKENvalue"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT_USER = "U0TRENDBOT"
TEAM = "T0TEST"
REPLY_METHODS = ("chat.postMessage", "chat.postEphemeral", "response_url")
CLIENT_ID = "1234567890.9876543210"
CLIENT_SECRET = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
APP_ID = "A0TRENDBOT"


def fixture(name: str) -> dict:
    """A recorded payload from tests/fixtures/slack (a fresh copy each time)."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


@dataclass
class Call:
    """One request the fake received."""

    method: str  # "chat.postMessage", ..., or "response_url"
    data: dict
    headers: dict
    status: int
    path: str = ""
    at: float = field(default_factory=time.monotonic)

    @property
    def token(self) -> str:
        """The bearer token the call came with ('' for none)."""
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else ""


@dataclass(frozen=True)
class Workspace:
    """One workspace as the fake knows it: its id, name and the bot user trendbot has there."""

    team_id: str
    name: str
    bot_user_id: str
    bot_id: str


class FakeSlack:
    """Slack's Web API on loopback. Use as a context manager; `api_url` is what SLACK_API_URL gets."""

    def __init__(self, tokens: tuple[str, ...] = (BOT_TOKEN, APP_TOKEN), client_id: str = CLIENT_ID,
                 client_secret: str = CLIENT_SECRET, scopes: tuple[str, ...] = ()):
        self.tokens = set(tokens)
        self.client_id, self.client_secret, self.scopes = client_id, client_secret, scopes
        self.bots: dict[str, Workspace] = {BOT_TOKEN: Workspace(TEAM, "Example", BOT_USER, "B0TRENDBOT")}
        self._codes: dict[str, tuple[str, str]] = {}  # one-time install codes: code -> (team id, installer)
        self.calls: list[Call] = []
        self.socket_url = ""  # what apps.connections.open hands out (a loopback WebSocket in tests)
        self.admins: set[str] = set()  # users.info says these users are workspace admins
        self.creators: dict[str, str] = {}  # conversations.info: channel id -> creator's user id
        self.post_errors: dict[str, str] = {}  # chat.postMessage to these channels fails with this error
        self.delays: dict[str, float] = {}  # method -> seconds the fake takes to answer it (a slow Slack)
        self.outside: dict[str, bool] = {}  # channels the bot is not a member of: channel id -> is private
        self.join_error = ""  # conversations.join fails with this error (e.g. missing_scope)
        self.members_of: dict[str, set[str]] = {}  # users.conversations: user id -> the channels they are in
        self._limits: list[tuple[str, int, dict]] = []  # (method, retry_after, match)
        self._ts = itertools.count(1)
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="fake-slack", daemon=True)

    # -- lifetime ---------------------------------------------------------------------------

    def __enter__(self) -> FakeSlack:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    @property
    def api_url(self) -> str:
        return self.url + "api/"

    def response_url(self, name: str) -> str:
        """A response_url that posts back here, recorded as method "response_url"."""
        return f"{self.url}response/{name}"

    # -- behaviour ----------------------------------------------------------------------------

    def grant(self, team_id: str, user_id: str) -> str:
        """A person in `team_id` approves the install on Slack's page: the one-time code Slack puts
        in the redirect back to the app."""
        code = f"{int(time.time())}.{next(self._ts)}.{team_id.lower()}"
        with self._cond:
            self._codes[code] = (team_id, user_id)
        return code

    def token_of(self, team_id: str) -> str:
        """The bot token the fake issued for `team_id` (the latest)."""
        with self._cond:
            return [t for t, w in self.bots.items() if w.team_id == team_id][-1]

    def revoke(self, team_id: str) -> None:
        """Slack revokes every token of a workspace (it uninstalled the app)."""
        with self._cond:
            for token in [t for t, w in self.bots.items() if w.team_id == team_id]:
                self.tokens.discard(token)

    def rate_limit_once(self, method: str, retry_after: int = 1, **match: str) -> None:
        """Answer the next `method` call whose data has `match` with 429 and Retry-After."""
        with self._cond:
            self._limits.append((method, retry_after, match))

    # -- reading what happened -----------------------------------------------------------------

    def replies(self, method: str | None = None) -> list[Call]:
        """Successful posts (chat.* and response_url), optionally of one method."""
        with self._cond:
            return [c for c in self.calls if c.status == 200 and c.method in REPLY_METHODS
                    and (method is None or c.method == method)]

    def wait_for(self, predicate, timeout: float = 5.0):
        """Block until predicate(self) is truthy; return its value.

        Checked on every call received, and every 20 ms for conditions outside the fake.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(self)
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting; calls so far: {[(c.method, c.status) for c in self.calls]}")
                self._cond.wait(min(left, 0.02))

    def wait_replies(self, n: int, method: str | None = None, timeout: float = 5.0) -> list[Call]:
        """Block until at least n successful replies arrived; return them."""
        def enough(f: FakeSlack) -> list[Call] | None:
            got = f.replies(method)
            return got if len(got) >= n else None

        return self.wait_for(enough, timeout)

    # -- the server ----------------------------------------------------------------------------

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def _limited(self, method: str, data: dict) -> int | None:
        with self._cond:
            for i, (m, retry_after, match) in enumerate(self._limits):
                if m == method and all(data.get(k) == v for k, v in match.items()):
                    del self._limits[i]
                    return retry_after
        return None

    def _access(self, data: dict, headers: dict) -> dict:
        """oauth.v2.access: the app's credentials (HTTP Basic) and a one-time code -> a new bot token.
        The answer has the shape https://docs.slack.dev/reference/methods/oauth.v2.access shows (and
        bolt-python's tests/mock_web_api_server use), for a bot-only install outside Enterprise Grid."""
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if headers.get("authorization", "") != f"Basic {expected}":
            return {"ok": False, "error": "invalid_client"}
        with self._cond:
            granted = self._codes.pop(data.get("code", ""), None)  # a code works once
            if granted is None:
                return {"ok": False, "error": "invalid_code"}
            team_id, user_id = granted
            n = next(self._ts)
            token = f"xoxb-{n}{team_id[1:].lower()}-{n:04d}-FAKE{team_id}secretTOKEN{n}"
            workspace = Workspace(team_id, f"Workspace {team_id}", f"U0BOT{team_id[1:]}", f"B0BOT{team_id[1:]}")
            self.tokens.add(token)
            self.bots[token] = workspace
        return {"ok": True, "app_id": APP_ID, "authed_user": {"id": user_id}, "scope": ",".join(self.scopes),
                "token_type": "bot", "access_token": token, "bot_user_id": workspace.bot_user_id,
                "team": {"id": team_id, "name": workspace.name}, "enterprise": None, "is_enterprise_install": False}

    def _answer(self, method: str, data: dict, headers: dict) -> tuple[int, dict, dict]:
        auth = headers.get("authorization", "")
        if method == "oauth.v2.access":
            return 200, {}, self._access(data, headers)
        if method != "response_url":
            if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                return 200, {}, {"ok": False, "error": "invalid_auth"}
        retry_after = self._limited(method, data)
        if retry_after is not None:
            return 429, {"Retry-After": str(retry_after)}, {"ok": False, "error": "ratelimited"}
        if method == "response_url":
            return 200, {}, {"ok": True}
        if method == "auth.test":
            bot = self.bots.get(auth[7:])
            if bot is None:  # the app-level token
                return 200, {}, {"ok": False, "error": "not_allowed_token_type"}
            return 200, {}, {"ok": True, "url": "https://example.slack.com/", "team": bot.name, "user": "trendbot",
                             "team_id": bot.team_id, "user_id": bot.bot_user_id, "bot_id": bot.bot_id,
                             "is_enterprise_install": False}
        ts = f"1715000100.{next(self._ts):06d}"
        if method == "users.info":
            user = data.get("user", "")
            return 200, {}, {"ok": True, "user": {"id": user, "is_admin": user in self.admins, "is_owner": False}}
        if method == "conversations.info":
            channel = data.get("channel", "")
            return 200, {}, {"ok": True, "channel": {"id": channel, "creator": self.creators.get(channel, "U0SOMEONE"),
                                                     "is_member": channel not in self.outside,
                                                     "is_private": self.outside.get(channel, False)}}
        if method in ("views.open", "views.publish"):
            return 200, {}, {"ok": True, "view": {"id": f"V{next(self._ts)}", **(data.get("view") if isinstance(
                data.get("view"), dict) else json.loads(data.get("view") or "{}"))}}
        if method == "users.conversations":
            return 200, {}, {"ok": True, "channels": [{"id": c} for c in sorted(self.members_of.get(data.get("user"), ()))],
                             "response_metadata": {"next_cursor": ""}}
        if method == "conversations.join":
            if self.join_error:
                return 200, {}, {"ok": False, "error": self.join_error}
            self.outside.pop(data.get("channel", ""), None)
            return 200, {}, {"ok": True, "channel": {"id": data.get("channel", "")}}
        if method == "chat.postMessage" and data.get("channel") in self.post_errors:
            return 200, {}, {"ok": False, "error": self.post_errors[data["channel"]]}
        if method == "chat.postMessage":
            return 200, {}, {"ok": True, "channel": data.get("channel"), "ts": ts, "message": {"text": data.get("text")}}
        if method == "apps.connections.open":
            if auth[7:] != APP_TOKEN:
                return 200, {}, {"ok": False, "error": "not_allowed_token_type"}
            return 200, {}, {"ok": True, "url": self.socket_url}
        if method == "chat.postEphemeral":
            return 200, {}, {"ok": True, "message_ts": ts}
        return 200, {}, {"ok": False, "error": "unknown_method"}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept alive, as Slack's are (every answer has a Content-Length)
            # Headers and body go out in two writes: on a kept-alive connection Nagle's algorithm would
            # hold the body back until the client's delayed ACK of the headers (~40 ms a call).
            disable_nagle_algorithm = True

            def do_GET(self) -> None:  # noqa: N802 (slack_sdk reads users.info and conversations.info by GET)
                self.do_POST()

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if headers.get("content-type", "").startswith("application/json"):
                    data = json.loads(raw or b"{}")
                else:
                    data = dict(parse_qsl(raw.decode()))
                if "?" in self.path:
                    data.update(parse_qsl(self.path.split("?", 1)[1]))
                if self.path.startswith("/api/"):
                    method = self.path[5:].split("?")[0]
                elif self.path.startswith("/response/"):
                    method = "response_url"
                else:
                    self.send_error(404)
                    return
                if fake.delays.get(method):
                    time.sleep(fake.delays[method])
                status, extra, body = fake._answer(method, data, headers)
                # recorded status: 200 only for a successful call; 0 for an {"ok": false} answer
                recorded = status if body.get("ok") or status != 200 else 0
                fake._record(Call(method, data, headers, recorded, self.path))
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        return Handler


# -- signing, as Slack does it: https://docs.slack.dev/authentication/verifying-requests-from-slack/


def signature_headers(body: bytes, secret: str = SIGNING_SECRET, timestamp: int | None = None) -> dict[str, str]:
    """X-Slack-Request-Timestamp and X-Slack-Signature (v0 HMAC-SHA256 of "v0:{ts}:{body}")."""
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


def form_body(fields: dict) -> bytes:
    """A slash command as Slack posts it: application/x-www-form-urlencoded fields."""
    return urlencode(fields).encode()


def interactive_body(payload: dict) -> bytes:
    """An interactivity request as Slack posts it: one form field `payload` holding the JSON."""
    return urlencode({"payload": json.dumps(payload)}).encode()


def post(port: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST to the app's /slack/events over real HTTP; (status, body), also for 4xx."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}/slack/events", data=body, method="POST",
                                 headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def send_signed(port: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST a correctly signed request."""
    return post(port, body, content_type, {**signature_headers(body), **(extra or {})})


class AppThread:
    """A SlackApp serving HTTP on 127.0.0.1:0 from its own event loop in a thread."""

    def __init__(self, make_app):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="slack-app", daemon=True)
        self.thread.start()

        async def start():
            app = make_app()
            return app, await app.start_http("127.0.0.1", 0)

        self.app, self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def call(self, coro, timeout: float = 10):
        """Run a coroutine in the app's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.call(self.app.stop())

        async def drain():  # let listener tasks that are still running finish
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if tasks:
                await asyncio.wait(tasks, timeout=5)

        self.call(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
