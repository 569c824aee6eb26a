"""HTTP mode over real HTTP on loopback: signed requests in, Web API calls out to a fake Slack.

The app's aiohttp server runs in a thread on 127.0.0.1:0; requests carry Slack's v0 signature;
the Web API and response_url are tests/slack_fake.FakeSlack. Also the `trendbot slack` CLI,
run as a process.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from adapters.inbox import Inbox
from adapters import slack_app
from adapters import slack_settings
from bot.sqlite_store import SQLiteStore as Store
from tests.conftest import MINI
from tests.slack_fake import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    AppThread,
    FakeSlack,
    fixture,
    form_body,
    interactive_body,
    post,
    send_signed,
    signature_headers,
)

ROOT = Path(__file__).resolve().parents[1]
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


class RecordingBot:
    """Wraps the real bot; remembers every Incoming and can hold answers until released."""

    def __init__(self, bot, gate: threading.Event | None = None):
        self.bot = bot
        self.gate = gate
        self.seen = []
        self.started = threading.Event()

    def handle(self, incoming):
        self.seen.append(incoming)
        self.started.set()
        if self.gate is not None and not self.gate.wait(10):
            raise AssertionError("gate never opened")
        return self.bot.handle(incoming)


@pytest.fixture
def fake():
    with FakeSlack() as f:
        yield f


def settings(fake: FakeSlack) -> slack_settings.Settings:
    return slack_settings.Settings.from_env({"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                                        "SLACK_API_URL": fake.api_url}, host="127.0.0.1", port=0)


@pytest.fixture
def start(fake, mini_bot, tmp_path):
    """start(bot=None, db=None) -> AppThread serving HTTP; all are closed after the test."""
    running: list[AppThread] = []
    stores: list[Store] = []

    def _start(bot=None, db: Path | None = None) -> AppThread:
        st = Store(db or tmp_path / "trendbot.db")
        stores.append(st)
        app = AppThread(lambda: slack_app.SlackApp(bot or mini_bot, Inbox(st, "slack"), settings(fake)))
        running.append(app)
        return app

    yield _start
    for app in running:
        app.close()
    for st in stores:
        st.close()


def slash(fake: FakeSlack, text: str, name: str = "cmd") -> bytes:
    return form_body(fixture("slash_command") | {"text": text, "response_url": fake.response_url(name)})


def event_body(name: str, **event) -> bytes:
    payload = fixture(name)
    payload["event"].update(event)
    return json.dumps(payload).encode()


def header(call) -> str:
    return call.data["blocks"][0]["text"]["text"]


# -- slash command ------------------------------------------------------------------------------


def test_slash_command_acks_empty_then_answers_in_channel(fake, start):
    app = start()
    status, body = send_signed(app.port, slash(fake, "is serverless cheaper?"), FORM)
    assert (status, body) == (200, b"")
    (reply,) = fake.wait_replies(1)
    assert reply.method == "response_url" and reply.path == "/response/cmd"
    assert reply.data["response_type"] == "in_channel" and reply.data["replace_original"] is False
    assert header(reply) == "Is serverless cheaper than running servers?"
    assert "Often, yes" in reply.data["text"]
    assert not fake.replies("chat.postMessage")


def test_slash_command_is_acknowledged_before_a_slow_answer(fake, start, mini_bot):
    gate = threading.Event()
    bot = RecordingBot(mini_bot, gate)
    app = start(bot)
    started = time.monotonic()
    status, _ = send_signed(app.port, slash(fake, "k8s"), FORM)
    assert status == 200 and time.monotonic() - started < 3
    assert bot.started.wait(5) and not gate.is_set()  # the answer was still being worked on at ack time
    assert not fake.replies()
    gate.set()
    (reply,) = fake.wait_replies(1)
    assert header(reply) == "Kubernetes"


@pytest.mark.parametrize("text, title", [("", "trendbot help"), ("help", "trendbot help"),
                                         ("best pizza in naples", "No good answer")])
def test_help_and_declines_go_only_to_the_asker(fake, start, text, title):
    app = start()
    assert send_signed(app.port, slash(fake, text), FORM)[0] == 200
    (reply,) = fake.wait_replies(1)
    assert reply.data["response_type"] == "ephemeral" and header(reply) == title


# -- events ---------------------------------------------------------------------------------


def test_mention_is_answered_in_a_thread_under_the_question(fake, start):
    app = start()
    status, _ = send_signed(app.port, json.dumps(fixture("app_mention")).encode(), JSON)
    assert status == 200
    (reply,) = fake.wait_replies(1)
    assert reply.method == "chat.postMessage"
    assert reply.headers["authorization"] == f"Bearer {BOT_TOKEN}"
    assert (reply.data["channel"], reply.data["thread_ts"]) == ("C0GENERAL", "1715000000.000100")
    assert header(reply) == "Is serverless cheaper than running servers?"
    assert reply.data["unfurl_links"] is False


def test_mention_decline_is_ephemeral_in_the_thread(fake, start):
    app = start()
    send_signed(app.port, event_body("app_mention", text="<@U0TRENDBOT> best pizza in naples"), JSON)
    (reply,) = fake.wait_replies(1)
    assert reply.method == "chat.postEphemeral"
    assert (reply.data["user"], reply.data["channel"], reply.data["thread_ts"]) == ("U0ALICE", "C0GENERAL", "1715000000.000100")
    assert any(b["type"] == "actions" for b in reply.data["blocks"])


def test_direct_message_is_answered_in_the_dm(fake, start):
    app = start()
    send_signed(app.port, json.dumps(fixture("message_im")).encode(), JSON)
    (reply,) = fake.wait_replies(1)
    assert reply.method == "chat.postMessage" and reply.data["channel"] == "D0ALICEDM"
    assert "thread_ts" not in reply.data
    assert header(reply) == "Kubernetes"


def test_own_and_other_bots_messages_are_ignored(fake, start, mini_bot):
    bot = RecordingBot(mini_bot)
    app = start(bot)
    for i, change in enumerate(({"bot_id": "B0OTHER", "user": "U0OTHERBOT"}, {"user": "U0TRENDBOT", "bot_id": "B0TRENDBOT"},
                                {"subtype": "bot_message", "bot_id": "B0OTHER"}, {"subtype": "message_changed"})):
        assert send_signed(app.port, event_body("message_im", ts=f"1715000900.00000{i}", **change), JSON)[0] == 200
    send_signed(app.port, json.dumps(fixture("message_im")).encode(), JSON)  # then a person
    (reply,) = fake.wait_replies(1)
    assert reply.data["channel"] == "D0ALICEDM"
    assert [inc.user_id for inc in bot.seen] == ["U0ALICE"]


def test_retried_event_gets_one_reply_also_after_a_restart(fake, start, tmp_path):
    body = json.dumps(fixture("app_mention")).encode()
    app = start()
    send_signed(app.port, body, JSON)
    fake.wait_replies(1)
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert send_signed(app.port, body, JSON, retry)[0] == 200
    fake.wait_for(lambda f: app.app.counts["duplicate"] == 1)
    app.close()

    restarted = start(db=tmp_path / "trendbot.db")  # a new process: new app, new connection, same file
    retry = {"X-Slack-Retry-Num": "2", "X-Slack-Retry-Reason": "http_timeout"}
    assert send_signed(restarted.port, body, JSON, retry)[0] == 200
    fake.wait_for(lambda f: restarted.app.counts["duplicate"] == 1)
    assert len(fake.replies()) == 1


def test_one_message_delivered_as_dm_and_mention_gets_one_reply(fake, start):
    app = start()
    dm = fixture("message_im")
    mention = fixture("app_mention")
    mention["event"].update(channel=dm["event"]["channel"], ts=dm["event"]["ts"], text="<@U0TRENDBOT> k8s?")
    mention["event_id"] = "Ev0MENTIONDM01"
    send_signed(app.port, json.dumps(dm).encode(), JSON)
    send_signed(app.port, json.dumps(mention).encode(), JSON)
    fake.wait_for(lambda f: app.app.counts["duplicate"] == 1)
    fake.wait_replies(1)  # the first delivery's reply, which may still be on its way
    assert len(fake.replies()) == 1


def test_url_verification_is_answered(fake, start):
    app = start()
    body = json.dumps({"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
                       "type": "url_verification"}).encode()
    status, answer = send_signed(app.port, body, JSON)
    assert status == 200 and b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in answer


# -- buttons --------------------------------------------------------------------------------


def test_pressing_a_suggestion_answers_that_topic(fake, start):
    app = start()
    payload = fixture("block_actions") | {"response_url": fake.response_url("action")}
    status, _ = send_signed(app.port, interactive_body(payload), FORM)
    assert status == 200
    (reply,) = fake.wait_replies(1)
    assert reply.path == "/response/action" and reply.data["response_type"] == "in_channel"
    assert header(reply) == "Serverless computing" and reply.data["replace_original"] is False


def test_more_replaces_the_short_answer_with_the_whole_entry(fake, start):
    app = start()
    send_signed(app.port, slash(fake, "does serverless scale with traffic"), FORM)
    (short,) = fake.wait_replies(1)
    (more,) = [b for b in short.data["blocks"] if b["type"] == "actions"][0]["elements"]
    assert more["action_id"] == "trendbot_more" and more["text"]["text"] == "More"
    payload = fixture("block_actions") | {"response_url": fake.response_url("more")}
    payload["actions"] = [{**payload["actions"][0], "action_id": more["action_id"], "value": more["value"]}]
    status, _ = send_signed(app.port, interactive_body(payload), FORM)
    assert status == 200
    full = fake.wait_replies(2)[1]
    assert full.path == "/response/more" and full.data["replace_original"] is True
    assert "response_type" not in full.data  # the replaced message keeps who could see it
    assert "Pay only for what runs." in full.data["text"] and "Tools: AWS Lambda" in full.data["text"]
    assert not [b for b in full.data["blocks"] if b["type"] == "actions"]  # nothing more to show
    assert not re.search(r"<[!@]", json.dumps(full.data))


# -- request verification -----------------------------------------------------------------------


def test_unverified_requests_are_401_and_get_no_reply(fake, start, mini_bot):
    bot = RecordingBot(mini_bot)
    app = start(bot)
    body = slash(fake, "k8s")
    good = signature_headers(body)
    stale = signature_headers(body, timestamp=int(time.time()) - 301)
    cases = {
        "wrong signature": (body, signature_headers(body, secret="0" * 32)),
        "stale timestamp": (body, stale),
        "no headers": (body, {}),
        "no signature": (body, {"X-Slack-Request-Timestamp": good["X-Slack-Request-Timestamp"]}),
        "no timestamp": (body, {"X-Slack-Signature": good["X-Slack-Signature"]}),
        "body changed by one byte": (body[:-1] + bytes([body[-1] ^ 1]), good),
    }
    for name, (data, headers) in cases.items():
        assert post(app.port, data, FORM, headers)[0] == 401, name
    assert post(app.port, body, FORM, good)[0] == 200  # the same request, signed, goes through
    fake.wait_replies(1)
    assert len(bot.seen) == 1 and len(fake.replies()) == 1


def test_junk_on_the_public_url_gets_a_4xx_and_at_most_one_warning_never_a_traceback(fake, start, mini_bot, caplog):
    bot = RecordingBot(mini_bot)
    app = start(bot)
    unsigned = [
        (b"{x", JSON, {}), (b"[1, 2]", JSON, {}), (b"\xff\xfe\x00junk", JSON, {}), (b"payload=%7Bx", FORM, {}),
        (b"{}", JSON, {"X-Slack-Request-Timestamp": "abc", "X-Slack-Signature": "v0=00"}),
        (b"{}", JSON, {"X-Slack-Request-Timestamp": "1e10", "X-Slack-Signature": "v0=00"}),
        (b"{}", JSON, {"X-Slack-Request-Timestamp": "9" * 400, "X-Slack-Signature": "v0=" + "f" * 64}),
        (b"{}", JSON, {"X-Slack-Request-Timestamp": "\xb2\xb3", "X-Slack-Signature": "v0=00"}),  # superscript digits
    ]
    signed_junk = [(b"{x", JSON), (b"[1, 2]", JSON), (b"\xff\xfe\x00junk", JSON), (b"payload=%7Bx", FORM),
                   (b"payload=%5B1%5D", FORM), (b"a=1&&&=%%%", FORM)]
    caplog.set_level(logging.INFO)
    for _ in range(25):  # 200 junk requests in all
        for body, kind, headers in unsigned:
            assert post(app.port, body, kind, headers)[0] == 401, body
    for body, kind in signed_junk:
        assert send_signed(app.port, body, kind)[0] == 400, body
    big = b'{"type": "event_callback", "x": "' + b"a" * (1024 * 1024) + b'"}'
    assert send_signed(app.port, big, JSON)[0] == 413
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith("adapters")]
    assert len(warnings) <= 1 and all(r.levelno == logging.WARNING for r in warnings), [r.getMessage() for r in warnings]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bot.seen and not fake.calls  # nothing reached the core, nothing was posted
    assert app.app.counts["refused"] == 25 * len(unsigned) + len(signed_junk) + 1


def test_a_signed_event_with_an_absurd_ts_is_answered(fake, start):
    app = start()
    body = event_body("message_im", ts="1" * 300)
    assert send_signed(app.port, body, JSON)[0] == 200
    (reply,) = fake.wait_replies(1, "chat.postMessage")
    assert reply.data["channel"] == "D0ALICEDM"
    assert send_signed(app.port, body, JSON)[0] == 200  # its retry is still recognised
    time.sleep(0.3)
    assert len(fake.replies("chat.postMessage")) == 1


# -- rate limits ------------------------------------------------------------------------------


def test_429_is_retried_after_retry_after_without_holding_up_others(fake, start):
    app = start()
    fake.rate_limit_once("chat.postMessage", retry_after=1, channel="C0GENERAL")
    send_signed(app.port, json.dumps(fixture("app_mention")).encode(), JSON)
    fake.wait_for(lambda f: any(c.status == 429 for c in f.calls))
    send_signed(app.port, json.dumps(fixture("message_im")).encode(), JSON)  # another conversation
    replies = fake.wait_replies(2)
    assert [r.data["channel"] for r in replies] == ["D0ALICEDM", "C0GENERAL"]  # the DM did not wait
    limited = next(c for c in fake.calls if c.status == 429)
    assert replies[1].at - limited.at >= 1.0  # Retry-After was honoured
    assert len(fake.replies("chat.postMessage")) == 2


def test_429_on_response_url_is_retried(fake, start):
    app = start()
    fake.rate_limit_once("response_url", retry_after=1)
    send_signed(app.port, slash(fake, "k8s"), FORM)
    (reply,) = fake.wait_replies(1)
    assert header(reply) == "Kubernetes"
    assert [c.status for c in fake.calls if c.method == "response_url"] == [429, 200]


# -- secrets --------------------------------------------------------------------------------


def test_tokens_never_reach_the_logs(fake, start, caplog):
    caplog.set_level(logging.DEBUG)  # everything every library logs, slack_sdk's request dumps included
    app = start()
    send_signed(app.port, slash(fake, "k8s"), FORM)
    send_signed(app.port, json.dumps(fixture("app_mention")).encode(), JSON)
    post(app.port, slash(fake, "k8s"), FORM, {"X-Slack-Signature": "v0=bad", "X-Slack-Request-Timestamp": "1"})
    fake.wait_replies(2)
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert "Sending a request" in text  # the debug dumps did run
    for secret in (BOT_TOKEN, SIGNING_SECRET):
        assert secret not in text


# -- the CLI as a process -------------------------------------------------------------------------


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "trendbot", "--knowledge", str(MINI), *args]


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TRENDBOT_"))}
    # /healthz on a free port: `trendbot slack` is the runner, with health and metrics like serve
    return {**env, "PYTHONPATH": str(ROOT), "TRENDBOT_HTTP_HOST": "127.0.0.1", "TRENDBOT_HTTP_PORT": "0", **extra}


@pytest.mark.slow
def test_cli_bad_settings_stop_with_one_line_naming_the_variable(fake, tmp_path):
    """Each kind of failure once, as a process (every malformed value is in test_slack_render's settings tests)."""
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    ok = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_API_URL": fake.api_url,
          "TRENDBOT_DB": str(tmp_path / "t.db")}
    cases = [
        ({k: v for k, v in ok.items() if k != "SLACK_BOT_TOKEN"}, "SLACK_BOT_TOKEN"),  # missing
        (ok | {"SLACK_APP_TOKEN": "not-an-app-token-LEAKME"}, "SLACK_APP_TOKEN"),  # malformed
        (ok | {"TRENDBOT_DB": str(blocker / "t.db")}, "TRENDBOT_DB"),  # the store cannot be created
        (ok | {"SLACK_BOT_TOKEN": "xoxb-0000-valid-shape-but-REVOKED"}, "SLACK_BOT_TOKEN"),  # auth.test: invalid_auth
    ]
    procs = [(subprocess.Popen(cli("slack", "--host", "127.0.0.1", "--port", "0"), env=base_env(**env),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT), env, variable)
             for env, variable in cases]  # started together: the suite stays fast
    for proc, env, variable in procs:
        try:
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        assert proc.returncode not in (0, None), (variable, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert variable in lines[0] and "Traceback" not in err
        for value in env.values():
            if "LEAKME" in value or "REVOKED" in value:
                assert value not in err + out


@pytest.mark.slow
def test_cli_serves_http_mode_and_logs_no_secret_even_verbose(fake, tmp_path):
    env = base_env(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=fake.api_url,
                   TRENDBOT_DB=str(tmp_path / "t.db"))
    proc = subprocess.Popen(cli("-v", "slack", "--host", "127.0.0.1", "--port", "0"), env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    err: list[str] = []

    def read() -> None:
        for line in proc.stderr:
            err.append(line)
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        port = None
        while port is None:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            m = re.search(r"listening for Slack on http://127\.0\.0\.1:(\d+)/slack/events", line)
            port = int(m.group(1)) if m else None
        assert send_signed(port, slash(fake, "k8s"), FORM)[0] == 200
        (reply,) = fake.wait_replies(1, timeout=10)
        assert header(reply) == "Kubernetes"
        proc.terminate()  # SIGTERM: the app stops cleanly
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        reader.join(5)
        proc.stdout.close()
        proc.stderr.close()
    text = "".join(err)
    assert "DEBUG" in text  # verbose logging was on
    for secret in (BOT_TOKEN, SIGNING_SECRET, APP_TOKEN):
        assert secret not in text
    assert (tmp_path / "t.db").exists()


@pytest.mark.slow
def test_cli_sigterm_finishes_every_reply_it_acknowledged(fake, tmp_path):
    """`trendbot slack` is the runner: on SIGTERM it stops taking events and finishes the answers it acked."""
    fake.delays["chat.postMessage"] = 1.0  # a slow Slack: every answer is still in flight at SIGTERM
    env = base_env(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET, SLACK_API_URL=fake.api_url,
                   TRENDBOT_DB=str(tmp_path / "t.db"))
    proc = subprocess.Popen(cli("slack", "--host", "127.0.0.1", "--port", "0"), env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        for line in proc.stderr:
            m = re.search(r"listening for Slack on http://127\.0\.0\.1:(\d+)/slack/events", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "never started"
        acked = 0
        for i in range(20):
            body = event_body("message_im", ts=f"1715000400.{i:06d}", client_msg_id=f"m{i}", text="k8s")
            acked += send_signed(port, body, JSON)[0] == 200
        assert acked == 20
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - began < 10
        err = proc.stderr.read()
    finally:
        proc.kill()
        proc.stdout.close()
        proc.stderr.close()
    assert len(fake.replies("chat.postMessage")) == 20, err  # none of the acknowledged questions was dropped
    assert "Traceback" not in err
