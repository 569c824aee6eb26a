"""Socket Mode: the same payloads, delivered as Socket Mode envelopes.

Why no Slack connection is needed: in Socket Mode, Slack's side is only a transport. slack_sdk's
client fetches a WebSocket URL with apps.connections.open and reads JSON envelopes from it;
bolt's AsyncSocketModeHandler.handle() turns each envelope into a BoltRequest, dispatches it
through the app (the same listeners HTTP mode uses, without signature checks: the socket is
authenticated by the app-level token) and sends the envelope's ack back. These tests call that
handle() with envelopes shaped as Slack sends them and a recording client in place of the
socket, so they exercise everything that is ours; the Web API calls still go over real HTTP to
the fake. The last test also runs the whole transport once, against a loopback WebSocket server
that the fake's apps.connections.open points to.
"""
from __future__ import annotations

import asyncio
import json
import logging

import pytest
from aiohttp import WSMsgType, web
from slack_sdk.socket_mode.request import SocketModeRequest

from adapters.inbox import Inbox
from adapters import slack_app
from adapters import slack_payloads
from adapters import slack_settings
from bot.sqlite_store import SQLiteStore as Store
from tests.slack_fake import APP_TOKEN, BOT_TOKEN, FakeSlack, fixture


class RecordingSocket:
    """Stands in for slack_sdk's SocketModeClient where the handler sends envelope acks."""

    logger = logging.getLogger("tests.socket")

    def __init__(self):
        self.acks = []

    async def send_socket_mode_response(self, response) -> None:
        self.acks.append(response)


@pytest.fixture
def fake():
    with FakeSlack() as f:
        yield f


@pytest.fixture
def app(fake, mini_bot, tmp_path):
    st = Store(tmp_path / "trendbot.db")
    settings = slack_settings.Settings.from_env({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": APP_TOKEN,
                                            "SLACK_API_URL": fake.api_url})
    assert settings.socket_mode
    yield slack_app.SlackApp(mini_bot, Inbox(st, "slack"), settings)
    st.close()


def envelope(kind: str, payload: dict, envelope_id: str, retry_attempt: int = 0) -> SocketModeRequest:
    message = {"envelope_id": envelope_id, "payload": payload, "type": kind,
               "accepts_response_payload": kind == "slash_commands"}
    if kind == "events_api":
        message |= {"retry_attempt": retry_attempt, "retry_reason": "timeout" if retry_attempt else ""}
    return SocketModeRequest.from_dict(message)


async def deliver(app: slack_app.SlackApp, *requests: SocketModeRequest) -> RecordingSocket:
    socket = RecordingSocket()
    handler = app.socket_handler()  # never connected: handle() is called directly
    try:
        for req in requests:
            await handler.handle(socket, req)
    finally:
        await handler.client.close()
    return socket


async def replies(fake: FakeSlack, n: int, method: str | None = None):
    return await asyncio.to_thread(fake.wait_replies, n, method)


async def test_slash_command_envelope_is_acked_then_answered(app, fake):
    payload = fixture("slash_command") | {"response_url": fake.response_url("cmd")}
    socket = await deliver(app, envelope("slash_commands", payload, "e-cmd-1"))
    assert [(a.envelope_id, a.payload) for a in socket.acks] == [("e-cmd-1", None)]  # empty ack
    (reply,) = await replies(fake, 1)
    assert reply.method == "response_url" and reply.data["response_type"] == "in_channel"
    assert reply.data["blocks"][0]["text"]["text"] == "Is serverless cheaper than running servers?"


async def test_mention_envelope_is_answered_in_the_thread(app, fake):
    socket = await deliver(app, envelope("events_api", fixture("app_mention"), "e-ev-1"))
    assert [a.envelope_id for a in socket.acks] == ["e-ev-1"]
    (reply,) = await replies(fake, 1)
    assert reply.method == "chat.postMessage" and reply.data["thread_ts"] == "1715000000.000100"


async def test_dm_envelope_is_answered_in_the_dm(app, fake):
    await deliver(app, envelope("events_api", fixture("message_im"), "e-dm-1"))
    (reply,) = await replies(fake, 1)
    assert reply.data["channel"] == "D0ALICEDM" and reply.data["blocks"][0]["text"]["text"] == "Kubernetes"


async def test_button_envelope_answers_the_topic(app, fake):
    payload = fixture("block_actions") | {"response_url": fake.response_url("act")}
    socket = await deliver(app, envelope("interactive", payload, "e-act-1"))
    assert [a.envelope_id for a in socket.acks] == ["e-act-1"]
    (reply,) = await replies(fake, 1)
    assert reply.data["blocks"][0]["text"]["text"] == "Serverless computing"


async def test_redelivered_event_gets_one_reply(app, fake):
    first = envelope("events_api", fixture("app_mention"), "e-1")
    again = envelope("events_api", fixture("app_mention"), "e-2", retry_attempt=1)
    socket = await deliver(app, first)
    await replies(fake, 1)
    socket = await deliver(app, again)
    assert [a.envelope_id for a in socket.acks] == ["e-2"]  # acked, so Slack stops retrying
    await asyncio.to_thread(fake.wait_for, lambda f: app.counts["duplicate"] == 1)
    assert len(fake.replies()) == 1


async def test_bot_messages_are_acked_and_ignored(app, fake):
    bot_dm = fixture("message_im")
    bot_dm["event"] |= {"bot_id": "B0OTHER", "subtype": "bot_message"}
    socket = await deliver(app, envelope("events_api", bot_dm, "e-bot"))
    assert [a.envelope_id for a in socket.acks] == ["e-bot"]
    await asyncio.to_thread(fake.wait_for, lambda f: app.counts["ignored"] == 1)
    assert not fake.replies()


async def test_over_a_loopback_websocket(app, fake):
    """The whole Socket Mode path once: apps.connections.open, hello, an envelope, its ack, the reply."""
    acks: asyncio.Queue = asyncio.Queue()
    payload = fixture("slash_command") | {"response_url": fake.response_url("ws"), "text": "k8s"}

    async def socket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0TRENDBOT"},
                            "debug_info": {"host": "applink-test", "approximate_connection_time": 18060}})
        await ws.send_json({"envelope_id": "e-ws-1", "payload": payload, "type": "slash_commands",
                            "accepts_response_payload": True})
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await acks.put(json.loads(msg.data))
        return ws

    server = web.Application()
    server.router.add_get("/link", socket)
    runner = web.AppRunner(server)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    fake.socket_url = f"ws://127.0.0.1:{runner.addresses[0][1]}/link?ticket=test"
    try:
        await app.start_socket_mode()
        ack = await asyncio.wait_for(acks.get(), 5)
        assert ack["envelope_id"] == "e-ws-1"
        (reply,) = await replies(fake, 1)
        assert reply.path == "/response/ws" and reply.data["blocks"][0]["text"]["text"] == "Kubernetes"
        opened = [c for c in fake.calls if c.method == "apps.connections.open"]
        assert len(opened) == 1 and opened[0].headers["authorization"] == f"Bearer {APP_TOKEN}"
    finally:
        await app.stop()
        await runner.cleanup()


async def test_rejected_app_token_names_the_variable(fake, mini_bot, tmp_path):
    with Store(tmp_path / "t.db") as st:
        settings = slack_settings.Settings.from_env({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_APP_TOKEN": "xapp-1-A0-9-REVOKED",
                                                "SLACK_API_URL": fake.api_url})
        app = slack_app.SlackApp(mini_bot, Inbox(st, "slack"), settings)
        with pytest.raises(slack_settings.SettingsError, match="^SLACK_APP_TOKEN was rejected"):
            await app.start_socket_mode()


async def test_an_event_is_in_the_inbox_before_its_envelope_is_acked(app, fake):
    import sqlite3

    recorded_at_ack = []

    class Checking(RecordingSocket):
        async def send_socket_mode_response(self, response) -> None:
            raw = sqlite3.connect(app.inbox.store.path)
            recorded_at_ack.append([r[0] for r in raw.execute("SELECT key FROM inbox")])
            raw.close()
            await super().send_socket_mode_response(response)

    handler = app.socket_handler()
    try:
        await handler.handle(Checking(), envelope("events_api", fixture("app_mention"), "e-ev-9"))
    finally:
        await handler.client.close()
    assert recorded_at_ack == [[slack_payloads.event_key(fixture("app_mention"))]]  # recorded, then acked
    await replies(fake, 1)
